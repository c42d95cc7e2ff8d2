#include <gmp.h>

#include <algorithm>
#include <thread>

#include "aijack/module.hpp"

#ifndef AIJACK_VERSION
#define AIJACK_VERSION "dev"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "aijack_lab's C++ core (pybind11, GMP)";
  m.attr("__version__") = AIJACK_VERSION;
  m.def("gmp_version", []() { return std::string(gmp_version); },
        "Version of the GMP library the core is linked against.");
  m.def("hardware_threads", []() { return std::max(1u, std::thread::hardware_concurrency()); },
        "Number of hardware threads the core's batch operations may use.");

  auto entries = aijack::submodule_registry();
  std::sort(entries.begin(), entries.end());
  pybind11::list names;
  for (const auto &[name, init] : entries) {
    auto sub = m.def_submodule(name.c_str());
    init(sub);
    names.append(name);
  }
  m.attr("submodules") = names;
}
