// Shared helpers for the GoogleTest suites: paths to the source tree, the
// shared datasets and the built CLI, running the CLI, temporary folders.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace aft {
std::string source_dir();                  // the repository root
std::string shared_dir();                  // ../shared/datasets beside the repository
std::string cli();                         // path of the built `affinity`
std::string temp_dir(const std::string &tag);  // a fresh empty folder under the build dir
// Runs a shell command; returns its exit status, stdout in *out, stderr in *err_out.
int run(const std::string &cmd, std::string *out = nullptr, std::string *err_out = nullptr);
bool file_exists(const std::string &path);
std::string read_file(const std::string &path);
void write_file(const std::string &path, const std::string &data);
std::vector<std::string> list_dir(const std::string &dir);
// (N, d) rows of seeded Gaussian draws, each scaled to unit L2 norm.
std::vector<float> random_unit(int64_t N, int d, unsigned seed);
// n product-like texts: text i is 1 + (7 i) mod max_words of `words`, word w
// being words[(i + 3 w) mod words.size()], joined by spaces.
std::vector<std::string> word_texts(int n, const std::vector<std::string> &words, int max_words);
}  // namespace aft
