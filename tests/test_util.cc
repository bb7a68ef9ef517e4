#include "test_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

extern "C" {
#include "io/h5util.h"
}

namespace {
// Silence HDF5's own error printing in every test binary: the library reports
// errors through af_error instead.
struct QuietHdf5 {
  QuietHdf5() { af_h5_quiet(); }
} quiet_hdf5;
}  // namespace

namespace aft {
std::string source_dir() { return AF_SOURCE_DIR; }
std::string shared_dir() { return std::string(AF_SOURCE_DIR) + "/../shared/datasets"; }
std::string cli() { return AF_CLI_PATH; }

std::string temp_dir(const std::string &tag) {
  std::string base = std::string(AF_BINARY_DIR) + "/test-tmp";
  mkdir(base.c_str(), 0755);
  std::string dir = base + "/" + tag + "-" + std::to_string(getpid());
  std::string rm = "rm -rf '" + dir + "'";
  if (std::system(rm.c_str()) != 0) throw std::runtime_error("rm failed");
  mkdir(dir.c_str(), 0755);
  return dir;
}

static std::string slurp(const std::string &p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int run(const std::string &cmd, std::string *out, std::string *err_out) {
  char tmpl_o[] = "/tmp/aft-out-XXXXXX", tmpl_e[] = "/tmp/aft-err-XXXXXX";
  int fo = mkstemp(tmpl_o), fe = mkstemp(tmpl_e);
  close(fo);
  close(fe);
  std::string full = "(" + cmd + ") >'" + tmpl_o + "' 2>'" + tmpl_e + "'";
  int st = std::system(full.c_str());
  if (out) *out = slurp(tmpl_o);
  if (err_out) *err_out = slurp(tmpl_e);
  unlink(tmpl_o);
  unlink(tmpl_e);
  if (st == -1) return -1;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

bool file_exists(const std::string &path) {
  struct stat s;
  return stat(path.c_str(), &s) == 0;
}
std::string read_file(const std::string &path) { return slurp(path); }
void write_file(const std::string &path, const std::string &data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
}
std::vector<std::string> list_dir(const std::string &dir) {
  std::vector<std::string> names;
  DIR *d = opendir(dir.c_str());
  if (!d) return names;
  while (dirent *e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  closedir(d);
  return names;
}
}  // namespace aft

namespace aft {
std::vector<std::string> word_texts(int n, const std::vector<std::string> &words, int max_words) {
  std::vector<std::string> out;
  const int nw = (int)words.size();
  for (int i = 0; i < n; i++) {
    std::string t;
    for (int w = 0; w < 1 + (i * 7) % max_words; w++) t += std::string(w ? " " : "") + words[(i + w * 3) % nw];
    out.push_back(t);
  }
  return out;
}

std::vector<float> random_unit(int64_t N, int d, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> x((size_t)N * d);
  for (int64_t i = 0; i < N; i++) {
    double s = 0;
    for (int c = 0; c < d; c++) s += std::pow(x[i * d + c] = n(g), 2);
    for (int c = 0; c < d; c++) x[i * d + c] /= (float)std::sqrt(s);
  }
  return x;
}
}  // namespace aft
