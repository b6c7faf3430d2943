// Host engine: the same per-group loop the CUDA kernel runs, values() over many steps, and program validation.
#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "torchsched/engine.hpp"

namespace torchsched {

namespace {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

// The name of parameter k of `code`, from its row in families.def.
std::string param_name(int32_t code, int k) {
  std::string names = family_params(code);
  size_t begin = 0;
  for (int i = 0; i < k && begin != std::string::npos; ++i) {
    begin = names.find(',', begin);
    if (begin != std::string::npos) ++begin;
  }
  if (begin == std::string::npos) return "";
  return names.substr(begin, names.find(',', begin) - begin);
}

// Checks the subtree at i and returns its nesting depth of clock-changing nodes.
int check_node(const Op* ops, int64_t n_ops, int64_t n_aux, const double* aux, int64_t i, int depth) {
  const Op& op = ops[i];
  const std::string where = "program node " + std::to_string(i);
  const FamilyTraits family = family_traits(op.code);
  if (!family.known) fail(where + ": unknown op code " + std::to_string(op.code));
  if (op.size < 1 || i + op.size > n_ops) fail(where + ": subtree size " + std::to_string(op.size) + " out of range");
  for (int k = 0; k < kNumParams; ++k) {
    const bool optional = (family.optional >> k) & 1u;  // NaN means "none" (exponential's bound)
    if (!std::isfinite(op.p[k]) && !(optional && std::isnan(op.p[k])))
      fail(where + ": parameter " + std::to_string(k) + " is not finite");
  }
  if (is_leaf(op.code)) {
    if (op.size != 1) fail(where + ": a leaf must have size 1");
    for (int k = 0; k < kNumParams; ++k)
      if (((family.positive >> k) & 1u) && !(op.p[k] > 0.0))
        fail(where + ": parameter " + std::to_string(k) + " (" + param_name(op.code, k) +
             ", a period or step count) must be > 0, got " + std::to_string(op.p[k]));
    if (family.table != TABLE_NONE) {
      const bool points = family.table == TABLE_POINTS;
      const int64_t need = (family.table == TABLE_SORTED)  ? op.b
                           : (family.table == TABLE_STEPS) ? 2 * op.b + 1
                                                           : 2 * op.b;
      if (op.a < 0 || op.b < 0 || op.a + need > n_aux) fail(where + ": table out of bounds");
      if (points && op.b < 1) fail(where + ": interpolation needs at least one point");
      for (int64_t k = 1; k < op.b; ++k) {
        if (aux[op.a + k] < aux[op.a + k - 1]) fail(where + ": table times must be sorted");
        if (points && aux[op.a + k] == aux[op.a + k - 1]) fail(where + ": interpolation times must be distinct");
      }
      for (int64_t k = 0; k < need; ++k)
        if (!std::isfinite(aux[op.a + k])) fail(where + ": table value is not finite");
    }
    if (op.code == OP_SIGNAL && !(op.p[0] >= 0.0 && op.p[0] < 65536.0 && op.p[0] == std::floor(op.p[0])))
      fail(where + ": a signal slot must be a whole number in [0, 65536)");
    return depth;
  }
  bool changes_clock = (op.code == OP_SEQUENCE || op.code == OP_SHIFT);
  int here = depth + (changes_clock ? 1 : 0);
  if (here > kMaxDepth) fail(where + ": schedules nest deeper than " + std::to_string(kMaxDepth));
  int64_t children = 0, j = i + 1, deepest = here;
  while (j < i + op.size) {
    int d = check_node(ops, n_ops, n_aux, aux, j, here);
    if (d > deepest) deepest = d;
    j += ops[j].size;
    ++children;
  }
  if (j != i + op.size) fail(where + ": children do not fill the subtree");
  if ((op.code == OP_SCALE || op.code == OP_SHIFT) && children != 1) fail(where + ": needs exactly one child");
  if (op.code == OP_PRODUCT && children != op.b) fail(where + ": child count mismatch");
  if (op.code == OP_SEQUENCE) {
    if (children != op.b || children < 1) fail(where + ": child count mismatch");
    if (op.a < 0 || op.a + op.b - 1 > n_aux) fail(where + ": boundaries out of bounds");
    for (int64_t k = 0; k + 1 < op.b; ++k) {
      if (!std::isfinite(aux[op.a + k])) fail(where + ": boundary is not finite");
      if (k > 0 && aux[op.a + k] < aux[op.a + k - 1]) fail(where + ": boundaries must be sorted");
    }
  }
  return static_cast<int>(deepest);
}

}  // namespace

void validate_program(const Op* ops, int64_t n_ops, int64_t n_aux, const double* aux,
                      const int32_t* roots, int64_t n_roots) {
  if (n_ops < 1) fail("program is empty");
  for (int64_t r = 0; r < n_roots; ++r) {
    int32_t root = roots[r];
    if (root < 0 || root >= n_ops) fail("root " + std::to_string(root) + " out of range");
  }
  // Every top-level tree is checked once; roots must be the start of one.
  int64_t i = 0;
  std::string starts(static_cast<size_t>(n_ops), '\0');
  while (i < n_ops) {
    check_node(ops, n_ops, n_aux, aux, i, 0);
    starts[static_cast<size_t>(i)] = 1;
    i += ops[i].size;
  }
  for (int64_t r = 0; r < n_roots; ++r)
    if (!starts[static_cast<size_t>(roots[r])]) fail("root " + std::to_string(roots[r]) + " is not the start of a program");
}

namespace {

// Splits [0, n) over the machine's cores when there is enough work to pay for the threads. Every
// element is computed by the same formula whichever thread gets it, so results do not depend on it.
template <typename Body>
void parallel_chunks(int64_t n, Body body) {
  constexpr int64_t kMinPerThread = 1 << 16;
  if (n < 2 * kMinPerThread) {
    body(0, n);
    return;
  }
  static const int64_t cores = std::max(1u, std::thread::hardware_concurrency());  // a syscall: ask once
  const int64_t workers = std::min<int64_t>(cores, n / kMinPerThread);
  if (workers <= 1) {
    body(0, n);
    return;
  }
  std::vector<std::thread> threads;
  const int64_t chunk = (n + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w)
    threads.emplace_back(body, w * chunk, std::min(n, (w + 1) * chunk));
  body(0, std::min(n, chunk));
  for (auto& th : threads) th.join();
}

}  // namespace

// ---- values() over sorted steps, a block at a time -----------------------------------------------
//
// evaluate() walks the program once per step. Over sorted steps a block of them walks it once: a
// sequence splits the block into contiguous runs, one per piece, and each leaf runs as one loop over its
// run. The loops of the common shapes are ones the compiler vectorizes (ts_cos has no branch or call).
// Every element still goes through evaluate()'s operations in evaluate()'s order, so the numbers are
// the same bit for bit; tests/test_core.py checks this on random programs.

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && defined(__GLIBC__) && !defined(__CUDACC__)
// One copy per instruction set, picked at load time (an ELF ifunc, hence glibc); the file is compiled
// without FMA contraction, so each copy rounds as the scalar path does.
#define TS_SIMD_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define TS_SIMD_CLONES
#endif

namespace {

constexpr int kBlock = 256;

// acc[i] *= v[i], where v came from a vectorized loop that gives NaN wherever it cannot (a cosine past
// ts_cos's range): those few elements are first redone one by one by `exact`.
template <typename Exact>
inline void redo_nan_and_multiply(double* v, const double* t, int n, double* acc, Exact exact) {
  for (int i = 0; i < n; ++i)
    if (v[i] != v[i]) v[i] = exact(t[i]);
  for (int i = 0; i < n; ++i) acc[i] *= v[i];
}

// acc[i] *= the leaf at t[i]. Defaults of the common families are passed as literal constants so the
// compiler drops their branches (and pow calls) and vectorizes the loop; it is the same function.
TS_SIMD_CLONES void leaf_block(const Op& op, const double* aux, const double* t, int n, const Ctx& ctx,
                               double* acc) {
  const double* p = op.p;
  switch (op.code) {
    case OP_COSINE:
      if (p[3] == 1.0 && p[6] == 1.0) {  // exponent 1, no k_decay
        const double q[kNumParams] = {p[0], p[1], p[2], 1.0, p[4], p[5], 1.0, p[7]};
        double v[kBlock];  // a lambda around this loop would keep it from being vectorized
        for (int i = 0; i < n; ++i) v[i] = cosine_decay<false>(q, t[i]);
        redo_nan_and_multiply(v, t, n, acc, [&q](double x) { return cosine_decay(q, x); });
        return;
      }
      break;
    case OP_WARMUP:
      if (p[3] == 0.0) {  // linear
        const double q[kNumParams] = {p[0], p[1], p[2], 0.0, p[4], p[5], p[6], p[7]};
        for (int i = 0; i < n; ++i) acc[i] *= warmup(q, t[i]);
        return;
      }
      break;
    case OP_ANNEAL:
      if (p[3] == 1.0) {  // cosine
        const double q[kNumParams] = {p[0], p[1], p[2], 1.0, p[4], p[5], p[6], p[7]};
        double v[kBlock];
        for (int i = 0; i < n; ++i) v[i] = anneal<false>(q, t[i]);
        redo_nan_and_multiply(v, t, n, acc, [&q](double x) { return anneal(q, x); });
        return;
      }
      if (p[3] == 0.0) {  // linear
        const double q[kNumParams] = {p[0], p[1], p[2], 0.0, p[4], p[5], p[6], p[7]};
        for (int i = 0; i < n; ++i) acc[i] *= anneal(q, t[i]);
        return;
      }
      break;
    default:
      break;
  }
  // Every other family of the step alone (CALL OF_T in families.def): one loop each, on a copy of the
  // parameters that the compiler knows does not alias acc.
  const double q[kNumParams] = {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]};
  switch (op.code) {
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT, TABLE, CALL, \
                  FORMULA)                                                                                       \
  TS_IF_OF_T(CALL, case OP_##NAME : for (int i = 0; i < n; ++i) acc[i] *= FORMULA(q, t[i]); return;)
#include "torchsched/families.def"
    default:
      break;
  }
  for (int i = 0; i < n; ++i) acc[i] *= eval_leaf(op, aux, t[i], ctx);
}

// acc[i] *= the subtree at node `at`, on clocks t[0..n) (sorted, non-decreasing).
void tree_block(const Op* ops, const double* aux, int32_t at, const double* t, int n, const Ctx& ctx,
                double* acc) {
  const Op& op = ops[at];
  if (op.code < OP_LEAF_END) {
    leaf_block(op, aux, t, n, ctx, acc);
    return;
  }
  switch (op.code) {
    case OP_PRODUCT:
      for (int32_t child = at + 1; child < at + op.size; child += ops[child].size)
        tree_block(ops, aux, child, t, n, ctx, acc);
      return;
    case OP_SCALE:
      for (int i = 0; i < n; ++i) acc[i] *= op.p[0];
      tree_block(ops, aux, at + 1, t, n, ctx, acc);
      return;
    case OP_SHIFT: {
      double shifted[kBlock];
      for (int i = 0; i < n; ++i) shifted[i] = t[i] + op.p[0];
      tree_block(ops, aux, at + 1, shifted, n, ctx, acc);
      return;
    }
    case OP_SEQUENCE: {
      // Piece k holds the steps with k boundaries at or before them: a contiguous run of sorted t.
      const double* bounds = aux + op.a;
      const int32_t n_bounds = op.b - 1;
      int32_t k = count_passed(bounds, n_bounds, t[0], false);  // the piece of the first step
      int32_t child = at + 1;
      for (int32_t c = 0; c < k; ++c) child += ops[child].size;
      int begin = 0;
      for (; k <= n_bounds && begin < n; ++k, child += ops[child].size) {
        int end = n;
        if (k < n_bounds) {
          end = begin;
          while (end < n && !(bounds[k] <= t[end])) ++end;  // first t past the piece
        }
        if (end == begin) continue;
        if (k == 0) {
          tree_block(ops, aux, child, t + begin, end - begin, ctx, acc + begin);
        } else {
          double local[kBlock];
          for (int i = begin; i < end; ++i) local[i - begin] = t[i] - bounds[k - 1];
          tree_block(ops, aux, child, local, end - begin, ctx, acc + begin);
        }
        begin = end;
      }
      return;
    }
    default:
      return;  // unreachable: programs are validated
  }
}

// out[k] for sorted steps, where step(k) gives the k-th step.
template <typename StepAt>
void evaluate_sorted(const Op* ops, const double* aux, int32_t root, int64_t n, double prev, double* out,
                     StepAt step_at) {
  const Ctx ctx{prev};
  parallel_chunks(n, [=](int64_t begin, int64_t end) {
    double t[kBlock];
    for (int64_t b = begin; b < end; b += kBlock) {
      const int m = static_cast<int>(std::min<int64_t>(kBlock, end - b));
      if (step_at(b + m - 1) > kExactSteps) {
        // past 2**53 a double no longer holds every step: the whole clock, one step at a time
        for (int i = 0; i < m; ++i) out[b + i] = evaluate(ops, aux, root, time_at(step_at(b + i)), ctx);
        continue;
      }
      for (int i = 0; i < m; ++i) {
        t[i] = static_cast<double>(step_at(b + i));
        out[b + i] = 1.0;
      }
      tree_block(ops, aux, root, t, m, ctx, out + b);
    }
  });
}

void check_finite(const double* out, int64_t n, const std::function<int64_t(int64_t)>& step_at) {
  for (int64_t k = 0; k < n; ++k)
    if (!std::isfinite(out[k]))
      fail("the schedule is not finite at step " + std::to_string(step_at(k)) +
           " (it overflows or divides by zero there)");
}

}  // namespace

void evaluate_steps(const Op* ops, const double* aux, int32_t root, const int64_t* steps, int64_t n,
                    double prev, double* out) {
  bool sorted = true;
  for (int64_t k = 1; k < n; ++k) sorted &= steps[k - 1] <= steps[k];
  if (sorted) {
    evaluate_sorted(ops, aux, root, n, prev, out, [steps](int64_t k) { return steps[k]; });
  } else {
    const Ctx ctx{prev};
    parallel_chunks(n, [=](int64_t begin, int64_t end) {
      for (int64_t k = begin; k < end; ++k) out[k] = evaluate(ops, aux, root, time_at(steps[k]), ctx);
    });
  }
  check_finite(out, n, [steps](int64_t k) { return steps[k]; });
}

void evaluate_range(const Op* ops, const double* aux, int32_t root, int64_t start, int64_t stride, int64_t n,
                    double prev, double* out) {
  if (start < 0 || stride < 1) fail("evaluate_range needs start >= 0 and stride >= 1");
  auto step_at = [start, stride](int64_t k) { return start + k * stride; };
  evaluate_sorted(ops, aux, root, n, prev, out, step_at);
  check_finite(out, n, step_at);
}

int64_t signal_slots(const Op* ops, int64_t n_ops) {
  int64_t slots = 0;
  for (int64_t i = 0; i < n_ops; ++i)
    if (ops[i].code == OP_SIGNAL) slots = std::max(slots, static_cast<int64_t>(ops[i].p[0]) + 1);
  return slots;
}

void write_groups_cpu(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                      int64_t groups, int64_t step, double* mirror, void* out, int32_t dtype,
                      bool read_prev, const double* signals, int64_t slots) {
  const Time t = time_at(step);
  float* out32 = static_cast<float*>(out);
  double* out64 = static_cast<double*>(out);
  // Compute every LR, check them all, then store: a learning rate is never non-finite, and a step that
  // would make one stores nothing (the mirror and the buffer keep the previous step's LRs).
  thread_local std::vector<double> next;
  next.resize(static_cast<size_t>(groups));
  double* lrs = next.data();
  parallel_chunks(groups, [=](int64_t begin, int64_t end) {
    for (int64_t g = begin; g < end; ++g) {
      double prev = mirror[g];
      if (read_prev && out) prev = (dtype == DT_FLOAT32) ? static_cast<double>(out32[g]) : out64[g];
      const double* row = signals != nullptr ? signals + g * slots : nullptr;
      lrs[g] = scale[g] * evaluate(ops, aux, roots[g], t, Ctx{prev, row});
    }
  });
  const bool narrow = out && dtype == DT_FLOAT32;
  for (int64_t g = 0; g < groups; ++g) {
    if (!std::isfinite(lrs[g]) || (narrow && !std::isfinite(static_cast<float>(lrs[g]))))
      fail("the LR of group " + std::to_string(g) + " is not finite at step " + std::to_string(step) +
           (std::isfinite(lrs[g]) ? " in float32 (it overflows the buffer's dtype)" : " (the schedule overflows there)") +
           "; nothing was stored");
  }
  std::copy(lrs, lrs + groups, mirror);
  if (!out) return;
  if (narrow) {
    for (int64_t g = 0; g < groups; ++g) out32[g] = static_cast<float>(lrs[g]);
  } else {
    std::copy(lrs, lrs + groups, out64);
  }
}

}  // namespace torchsched
