// Registration of the core's submodules: each feature file declares
//   AIJACK_SUBMODULE(paillier, m) { m.def(...); }
// and module.cpp creates aijack_lab._core.<name> for it, so features never edit a shared file.
#pragma once
#include <pybind11/pybind11.h>

#include <string>
#include <utility>
#include <vector>

namespace aijack {

using SubmoduleInit = void (*)(pybind11::module_ &);

inline std::vector<std::pair<std::string, SubmoduleInit>> &submodule_registry() {
  static std::vector<std::pair<std::string, SubmoduleInit>> registry;
  return registry;
}

struct SubmoduleRegistrar {
  SubmoduleRegistrar(const char *name, SubmoduleInit init) {
    submodule_registry().emplace_back(name, init);
  }
};

}  // namespace aijack

#define AIJACK_SUBMODULE(name, module_var)                                         \
  static void aijack_submodule_init_##name(pybind11::module_ &module_var);        \
  static const ::aijack::SubmoduleRegistrar aijack_submodule_registrar_##name(   \
      #name, &aijack_submodule_init_##name);                                      \
  static void aijack_submodule_init_##name(pybind11::module_ &module_var)
