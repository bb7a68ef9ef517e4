// The layer rule of docs/architecture.md, checked on the source tree:
//   * a file in engine/<layer>/ includes only its own layer's headers and those
//     of the layers below it (kLayers below), never one above or beside it;
//   * kernels/ includes only engine/base;
//   * tools/ (the CLI) includes only the public header "affinity.h" and its
//     own tools/ headers;
//   * no header include cycle anywhere (within a layer too).
// A violation names the file, the line and the include.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Allowed dependencies of each layer (besides itself): the table in
// CMakeLists.txt (AF_DEPS_<layer>), which also compiles each layer with the
// sections of affinity.h it may not use hidden. Passed in as
// "layer:dep,dep|layer:...|".
std::map<std::string, std::set<std::string>> parse_dag(const std::string &dag) {
  std::map<std::string, std::set<std::string>> out;
  size_t i = 0;
  while (i < dag.size()) {
    size_t bar = dag.find('|', i), colon = dag.find(':', i);
    if (bar == std::string::npos) bar = dag.size();
    std::string layer = dag.substr(i, colon - i), deps = dag.substr(colon + 1, bar - colon - 1);
    auto &set = out[layer];
    size_t j = 0;
    while (j < deps.size()) {
      size_t comma = deps.find(',', j);
      if (comma == std::string::npos) comma = deps.size();
      set.insert(deps.substr(j, comma - j));
      j = comma + 1;
    }
    i = bar + 1;
  }
  return out;
}

const std::map<std::string, std::set<std::string>> kLayers = parse_dag(AF_LAYER_DAG);

struct Include {
  std::string target;  // as written between the quotes
  int line;
};

std::vector<Include> includes_of(const fs::path &p) {
  std::ifstream in(p);
  std::vector<Include> out;
  std::string s;
  static const std::regex re("^\\s*#\\s*include\\s*\"([^\"]+)\"");
  int line = 0;
  while (std::getline(in, s)) {
    ++line;
    std::smatch m;
    if (std::regex_search(s, m, re)) out.push_back({m[1].str(), line});
  }
  return out;
}

// The layer a quoted include names ("" when it names none of ours).
std::string layer_of_include(const std::string &inc) {
  auto slash = inc.find('/');
  if (slash != std::string::npos) {
    std::string first = inc.substr(0, slash);
    if (kLayers.count(first) && first != "kernels") return first;
    if (first == "cuda" || first == "cpu") return "kernels";
  }
  if (inc == "ops.h" || inc == "ops_backward.h" || inc == "ops_table.h" ||
      inc == "cuda_check.h" || inc == "cuda_ops.h")
    return "kernels";
  if (inc == "affinity.h") return "public";
  return "";
}

std::vector<fs::path> sources_under(const fs::path &dir) {
  std::vector<fs::path> out;
  if (!fs::exists(dir)) return out;
  for (auto &e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    auto ext = e.path().extension().string();
    if (ext == ".c" || ext == ".h" || ext == ".cu" || ext == ".cuh") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every violation of the rule under root, one line each.
std::vector<std::string> violations(const fs::path &root, int *n_includes) {
  std::vector<std::string> bad;
  auto rel = [&](const fs::path &p) { return fs::relative(p, root).string(); };
  *n_includes = 0;
  if (fs::exists(root / "engine"))
    for (auto &e : fs::directory_iterator(root / "engine")) {
      if (e.is_regular_file())
        bad.push_back(rel(e.path()) + ": engine/ holds only layer folders");
      if (e.is_directory() && !kLayers.count(e.path().filename().string()))
        bad.push_back(rel(e.path()) + ": not a layer of docs/architecture.md");
    }
  for (auto &[layer, allowed] : kLayers) {
    fs::path dir = layer == "kernels" ? root / "kernels" : root / "engine" / layer;
    for (auto &f : sources_under(dir))
      for (auto &inc : includes_of(f)) {
        std::string to = layer_of_include(inc.target);
        ++*n_includes;
        if (to.empty() || to == layer || to == "public" || allowed.count(to)) continue;
        bad.push_back(rel(f) + ":" + std::to_string(inc.line) + ": layer " + layer +
                      " includes \"" + inc.target + "\" of layer " + to);
      }
  }
  for (auto &f : sources_under(root / "tools"))
    for (auto &inc : includes_of(f)) {
      ++*n_includes;
      if (inc.target == "affinity.h" || fs::exists(root / "tools" / inc.target)) continue;
      bad.push_back(rel(f) + ":" + std::to_string(inc.line) + ": the CLI includes \"" +
                    inc.target + "\"; it may use only \"affinity.h\" and tools/ headers");
    }
  // Include graph over every file of ours; an include resolves against the
  // including file's folder, then engine/, kernels/, include/, tools/ (the
  // build's include path).
  std::map<std::string, std::vector<std::string>> g;
  for (auto d : {"engine", "kernels", "include", "tools"})
    for (auto &f : sources_under(root / d)) {
      auto &edges = g[rel(f)];
      for (auto &inc : includes_of(f))
        for (auto base : {f.parent_path(), root / "engine", root / "kernels", root / "include",
                          root / "tools"}) {
          fs::path c = base / inc.target;
          if (fs::exists(c)) {
            edges.push_back(rel(fs::canonical(c)));
            break;
          }
        }
    }
  std::map<std::string, int> state;  // 0 new, 1 on the stack, 2 done
  std::vector<std::string> stack;
  std::function<void(const std::string &)> dfs = [&](const std::string &u) {
    state[u] = 1;
    stack.push_back(u);
    for (auto &v : g[u]) {
      if (state[v] == 1) {
        std::string cyc = "include cycle: ";
        for (auto it = std::find(stack.begin(), stack.end(), v); it != stack.end(); ++it)
          cyc += *it + " -> ";
        bad.push_back(cyc + v);
      } else if (state[v] == 0) {
        dfs(v);
      }
    }
    stack.pop_back();
    state[u] = 2;
  };
  for (auto &kv : g)
    if (state[kv.first] == 0) dfs(kv.first);
  return bad;
}

void write(const fs::path &p, const std::string &text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

}  // namespace

TEST(Layout, TheSourceTreeFollowsTheLayerRule) {
  int n = 0;
  auto bad = violations(AF_SOURCE_DIR, &n);
  for (auto &b : bad) ADD_FAILURE() << b;
  EXPECT_GT(n, 150) << "the scan found almost no includes: is AF_SOURCE_DIR right?";
}

TEST(Layout, TheLayerTableIsADagOverTheTenLayers) {
  EXPECT_EQ(kLayers.size(), 10u);
  EXPECT_TRUE(kLayers.at("base").empty());
  EXPECT_EQ(kLayers.at("kernels"), std::set<std::string>{"base"});
  // No layer may reach itself through its dependencies.
  for (auto &[layer, deps] : kLayers)
    for (auto &d : deps) {
      ASSERT_TRUE(kLayers.count(d)) << layer << " depends on unknown layer " << d;
      EXPECT_FALSE(kLayers.at(d).count(layer)) << layer << " <-> " << d;
    }
}

// The checker on a made-up tree: each kind of violation is seen, and a clean
// tree passes.
TEST(Layout, TheCheckerSeesEachKindOfViolation) {
  fs::path t = fs::path(AF_BINARY_DIR) / "layout_check_tree";
  fs::remove_all(t);
  write(t / "engine/base/a.h", "#include \"base/b.h\"\n");
  write(t / "engine/base/b.h", "#include \"base/a.h\"\n");            // cycle
  write(t / "engine/io/c.c", "#include \"pipeline/run.h\"\n");        // climbs
  write(t / "engine/pipeline/run.h", "#include \"io/d.h\"\n");        // fine
  write(t / "engine/io/d.h", "\n");
  write(t / "kernels/ops.c", "#include \"io/d.h\"\n");                // kernels -> io
  write(t / "tools/cmd.c", "#include \"io/d.h\"\n#include \"affinity.h\"\n");  // internal
  write(t / "engine/stray.c", "\n");
  int n = 0;
  auto bad = violations(t, &n);
  auto has = [&](const std::string &s) {
    return std::any_of(bad.begin(), bad.end(),
                       [&](const std::string &b) { return b.find(s) != std::string::npos; });
  };
  EXPECT_TRUE(has("include cycle: engine/base/a.h -> engine/base/b.h -> engine/base/a.h"));
  EXPECT_TRUE(has("engine/io/c.c:1: layer io includes \"pipeline/run.h\""));
  EXPECT_TRUE(has("kernels/ops.c:1: layer kernels includes \"io/d.h\""));
  EXPECT_TRUE(has("tools/cmd.c:1: the CLI includes \"io/d.h\""));
  EXPECT_TRUE(has("engine/stray.c"));
  EXPECT_EQ(bad.size(), 5u);
  fs::remove_all(t);
  write(t / "engine/base/a.h", "\n");
  write(t / "engine/io/c.c", "#include \"base/a.h\"\n");
  write(t / "tools/cmd.c", "#include \"affinity.h\"\n");
  EXPECT_TRUE(violations(t, &n).empty());
  fs::remove_all(t);
}
