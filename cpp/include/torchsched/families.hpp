// torchsched: the program record and everything derived from the families table (families.def): the
// OpCode enum, and compile-time lookups of each code's kind, parameter constraints, torch split and
// per-group parameters. Usable on the device (no STL, no exceptions, no I/O).
#pragma once

#include <cstdint>

#include "common.hpp"

namespace torchsched {

constexpr int kNumParams = 8;
constexpr int kMaxDepth = 16;  // nesting of sequence/shift nodes a program may use

// One node of a compiled schedule program. Programs are laid out in pre-order: a combinator is
// followed by its children, and `size` counts the node plus its whole subtree, so the next sibling
// of node i is i + ops[i].size. Tables (milestones, points, boundaries) live in a shared `aux` array.
struct Op {
  int32_t code;  // OpCode
  int32_t size;  // nodes in this subtree, itself included
  int32_t a;     // aux offset (table families, sequence boundaries)
  int32_t b;     // table length, or number of children
  double p[kNumParams];
};
static_assert(sizeof(Op) == 16 + 8 * kNumParams, "Op must match the Python record layout");

struct Ctx {
  double prev;                       // the LR the group had before this step (chainable rules only)
  const double* signals = nullptr;   // this group's row of signal factors (SIGNAL leaves); none: all 1
  bool f32 = false;                  // torch's rules in float32 tensor arithmetic (float32 LR tensors)
};

// A parameter mask: bit k stands for p[k] (pbits(2, 6) is p[2] and p[6]).
template <typename... Index>
TS_HD constexpr unsigned pbits(Index... k) {
  return (0u | ... | (1u << k));
}

enum FamilyKind : int32_t { KIND_NATIVE = 0, KIND_CHAINABLE = 1, KIND_TORCH = 2, KIND_COMBINATOR = 3, KIND_SIGNAL = 4 };
enum TableLayout : int32_t { TABLE_NONE = 0, TABLE_SORTED = 1, TABLE_STEPS = 2, TABLE_POINTS = 3 };

enum OpCode : int32_t {
#define TS_FAMILY(NAME, CODE, ...) OP_##NAME = CODE,
#include "families.def"
};

// TS_IF_OF_T(CALL, X) is X for the rows whose CALL is OF_T (a formula of p and t alone), else nothing.
#define TS_IF_OF_T(CALL, X) TS_IF_OF_T_##CALL(X)
#define TS_IF_OF_T_OF_T(X) X
#define TS_IF_OF_T_OF_TABLE(X)
#define TS_IF_OF_T_OF_OP(X)
#define TS_IF_OF_T_OF_CTX(X)
#define TS_IF_OF_T_NODE(X)

// One row of the table, without its names.
struct FamilyTraits {
  bool known;  // false: no row has this code
  FamilyKind kind;
  unsigned positive, integer, optional, per_group;  // parameter masks
  bool split;
  TableLayout table;
};

TS_HD constexpr FamilyTraits family_traits(int32_t code) {
  switch (code) {
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT, TABLE, ...) \
    case CODE: return FamilyTraits{true, KIND_##KIND, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT != 0, TABLE_##TABLE};
#include "families.def"
    default: return FamilyTraits{false, KIND_COMBINATOR, 0u, 0u, 0u, 0u, false, TABLE_NONE};
  }
}

TS_HD constexpr bool is_leaf(int32_t code) {
  return family_traits(code).known && family_traits(code).kind != KIND_COMBINATOR;
}
// True for the torch rules evaluated as torch_coef (shared by all groups) then torch_apply (per group).
TS_HD constexpr bool torch_split(int32_t code) { return family_traits(code).split; }
// True when p[k] of `code` may differ between the groups of one split torch rule.
TS_HD constexpr bool is_per_group_param(int32_t code, int k) { return (family_traits(code).per_group >> k) & 1u; }

// The parameter names of `code` in p[] order, comma-separated (host only: for messages).
inline const char* family_params(int32_t code) {
  switch (code) {
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, ...) case CODE: return PARAMS;
#include "families.def"
    default: return "";
  }
}

// One past the largest leaf code. Leaves come first, so the hot paths tell a leaf from a combinator by
// `code < OP_LEAF_END` in a validated program.
TS_HD constexpr int32_t leaf_code_end() {
  int32_t end = 0;
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, ...) \
  if (KIND_##KIND != KIND_COMBINATOR && CODE + 1 > end) end = CODE + 1;
#include "families.def"
  return end;
}
enum : int32_t { OP_LEAF_END = leaf_code_end() };

// ---- checks of the table itself, at compile time ----------------------------------------------
// (Two rows with one name or one code fail already: as a repeated enumerator and a repeated case.)

constexpr int param_count(const char* names) {
  if (*names == '\0') return 0;
  int n = 1;
  for (; *names != '\0'; ++names) n += (*names == ',') ? 1 : 0;
  return n;
}

#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT, ...)          \
  static_assert(param_count(PARAMS) <= kNumParams, "families.def: " #NAME " has too many parameters");          \
  static_assert(((POSITIVE | INTEGER | OPTIONAL | PER_GROUP) >> param_count(PARAMS)) == 0u,                    \
                "families.def: a mask of " #NAME " names a parameter its PARAMS do not list");                \
  static_assert(KIND_##KIND == KIND_COMBINATOR ? CODE >= OP_LEAF_END : CODE < OP_LEAF_END,                     \
                "families.def: " #NAME ": every leaf code must be below every combinator code");             \
  static_assert(KIND_##KIND != KIND_CHAINABLE || SPLIT, "families.def: " #NAME ": a chainable rule is split"); \
  static_assert(!SPLIT || KIND_##KIND == KIND_CHAINABLE || KIND_##KIND == KIND_TORCH,                         \
                "families.def: " #NAME ": only torch rules are split");
#include "families.def"

}  // namespace torchsched
