// torchsched._core.FAMILIES: the rows of families.def, for Python to build its op codes from.
#include "register.hpp"

#include <cctype>
#include <string>

#include "torchsched/families.hpp"

namespace py = pybind11;

namespace {

std::string lower(const char* word) {
  std::string out(word);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

py::tuple split_names(const std::string& names) {
  py::list out;
  size_t begin = 0;
  while (!names.empty() && begin <= names.size()) {
    const size_t comma = names.find(',', begin);
    const size_t end = (comma == std::string::npos) ? names.size() : comma;
    out.append(names.substr(begin, end - begin));
    begin = end + 1;
  }
  return py::tuple(out);
}

}  // namespace

namespace torchsched::bindings {

void register_families(py::module_& m) {
  using namespace torchsched;
  m.attr("FAMILY_FIELDS") = py::make_tuple("code_name", "code", "name", "kind", "params", "positive", "integer",
                                           "optional", "per_group", "chains", "torch_split", "table");
  py::list rows;
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT, TABLE, ...)   \
  rows.append(py::make_tuple(#NAME, CODE, PY_NAME, lower(#KIND), split_names(PARAMS), POSITIVE, INTEGER,         \
                             OPTIONAL, PER_GROUP, KIND_##KIND == KIND_CHAINABLE, SPLIT != 0, lower(#TABLE)));
#include "torchsched/families.def"
  m.attr("FAMILIES") = py::tuple(rows);
}

}  // namespace torchsched::bindings
