// torchsched: the one place where schedule formulas live.
//
// Every family is a TS_HD function of the step. The CPU engine, the CUDA kernel and the host mirror
// all call these, so a CPU test of a formula is a test of what the GPU computes. Plain structs only:
// no STL, no exceptions, no allocation, no I/O (this header is compiled by nvcc for the device too).
// Which op code calls which formula, and how, is the families table (families.def).
#pragma once

#include <cmath>
#include <cstdint>

#include "cos.hpp"
#include "families.hpp"
#include "plateau.hpp"
#include "torch_rules.hpp"

namespace torchsched {

// ---- leaf families ---------------------------------------------------------------------------

template <typename T>
TS_HD double constant_value(const double* p, const T& /*t*/) { return p[0]; }

template <typename T>
TS_HD double step_decay(const double* p, const T& t) {
  return p[0] * pow(p[2], floor_div(t, p[1]));
}

// torch MultiStepLR / optax piecewise_constant switch at t == boundary; Keras PiecewiseConstantDecay
// switches one step later (its boundaries are inclusive on the left piece).
template <typename T>
TS_HD double piecewise_constant(const double* p, const double* aux, int32_t a, int32_t n, const T& t) {
  int32_t k = count_passed(aux + a, n, t, p[0] != 0.0);
  return aux[a + n + k];
}

// optax exponential_decay (TF/Keras ExponentialDecay is begin = 0, no bound). As in optax, the bound
// clips every value, the held initial one before `begin` included.
template <typename T>
TS_HD double exponential_decay(const double* p, const T& t) {
  const T count = minus(t, p[3]);
  double v = p[0];
  if (strictly_past(count, 0.0)) {
    double e = clock(count) / p[2];
    if (p[4] != 0.0) e = floor_div(count, p[2]);
    v = p[0] * pow(p[1], e);
  }
  double bound = p[5];
  if (bound == bound) v = (p[1] < 1.0) ? ts_max(v, bound) : ts_min(v, bound);  // NaN: no bound
  return v;
}

// (init - end) * (1 - (t/T)^k)^power + end; with cycle, T grows to the next multiple (Keras).
// (t/T)^k rather than t^k / T^k (timm's order): equal up to rounding, and finite for any k. The base
// 1 - (t/T)^k is kept >= 0: with a non-integer T, T * ceil(t/T) can round to just below t, and a
// negative base to a fractional power is NaN.
template <typename T>
TS_HD double polynomial_decay(const double* p, const T& time) {
  double steps = p[2];
  double t = clock(time);
  if (p[4] != 0.0) {
    // ceil(t / steps): past 2**53 the whole quotient, plus one where there is a remainder
    double r, m;
    if (t == 0.0) m = 1.0;
    else if (exact_remainder(time, steps, &r)) m = floor_div(time, steps) + (r != 0.0 ? 1.0 : 0.0);
    else m = ceil(t / steps);
    steps *= m;
  } else {
    t = ts_min(t, steps);
  }
  double frac = t / steps;
  if (frac == 0.0) return p[0];  // exactly init at the start, so a piece joins its predecessor seamlessly
  if (p[5] != 1.0) frac = pow(frac, p[5]);
  const double rest = ts_max(0.0, 1.0 - frac);
  return (p[0] - p[1]) * (p[3] == 1.0 ? rest : pow(rest, p[3])) + p[1];  // pow(x, 1) is x: skip the call
}

template <typename T>
TS_HD double inverse_time_decay(const double* p, const T& t) {
  double e = clock(t) / p[2];
  if (p[3] != 0.0) e = floor_div(t, p[2]);
  return p[0] / (1.0 + p[1] * e);
}

template <typename T>
TS_HD double inverse_power_decay(const double* p, const T& t) {
  return p[0] * pow(1.0 + clock(t) / p[1], -p[2]);
}

// Transformers' inverse_sqrt after warmup, on its local clock: init / sqrt((t + timescale) / timescale).
template <typename T>
TS_HD double inverse_sqrt_decay(const double* p, const T& t) {
  return p[0] / sqrt((clock(t) + p[1]) / p[1]);
}

// final + (init - final) * c^exponent, c = (1 + cos(2 pi cycles (t/T)^k)) / 2. cycles = 0.5 is one
// half cosine over T. clamp holds the final value past T (optax, Keras); without it the cosine goes on
// (torch's closed form, Transformers).
template <bool kCosFallback = true, typename T>
TS_HD double cosine_decay(const double* p, const T& time) {
  double t = clock(time);
  double steps = p[2];
  if (p[5] != 0.0) t = ts_min(t, steps);
  double frac = t / steps;
  if (p[6] != 1.0) frac = pow(frac, p[6]);  // timm's k_decay: t^k / T^k, finite for any k
  double c = 0.5 * (1.0 + ts_cos<kCosFallback>(kPi * (2.0 * p[4] * frac)));
  if (c == 1.0) return p[0];  // exactly init at the start (final + (init - final) may round)
  if (p[3] != 1.0) c = pow(c, p[3]);
  return p[1] + (p[0] - p[1]) * c;
}

// Index of the restart cycle that holds t, and where that cycle starts and how long it is. Returns
// false when t lies past infinitely many cycles (period_mult < 1 shrinks the periods geometrically, so
// they add up to first / (1 - mult)).
template <typename T>
TS_HD bool restart_cycle(const T& time, double first, double mult, double* index, double* start, double* period,
                         double* into) {
  const double t = clock(time);
  if (mult == 1.0 && exact_remainder(time, first, into)) {  // past 2**53: the cycle and the place in it in int64
    *index = floor_div(time, first); *start = *index * first; *period = first;
    return true;
  }
  *into = -1.0;  // t - start: left to the caller
  if (mult == 1.0) {
    // floor(t / first) can land one cycle off when first is not an integer (33 / 1.1 rounds to just
    // below 30), so the cycle is checked against where it starts and ends, as below.
    double i = floor(t / first);
    if (i > 0.0 && i * first > t) i -= 1.0;
    if ((i + 1.0) * first <= t) i += 1.0;
    *index = i; *start = i * first; *period = first;
    return true;
  }
  if (mult < 1.0 && t * (1.0 - mult) >= first) return false;
  // Closed form as timm and Keras write it, then nudged so that rounding never puts t in the wrong cycle.
  double i = floor(log(1.0 - t / first * (1.0 - mult)) / log(mult));
  if (i < 0.0) i = 0.0;
  for (int k = 0; k < 2; ++k) {
    if (first * (1.0 - pow(mult, i + 1.0)) / (1.0 - mult) <= t) i += 1.0;
    if (i > 0.0 && first * (1.0 - pow(mult, i)) / (1.0 - mult) > t) i -= 1.0;
  }
  *index = i;
  *start = first * (1.0 - pow(mult, i)) / (1.0 - mult);
  *period = first * pow(mult, i);
  return *period > 0.0;
}

template <typename T>
TS_HD double cosine_restarts(const double* p, const T& time) {
  const double t = clock(time);
  double i, start, period, into;
  if (!restart_cycle(time, p[2], p[3], &i, &start, &period, &into)) return p[1];
  double limit = p[5];
  if (limit > 0.0 && i >= limit) return p[1];
  double frac = ts_clamp01(((into >= 0.0) ? into : t - start) / period);
  if (p[7] != 1.0) frac = pow(frac, p[7]);  // timm's k_decay
  double c = 0.5 * (1.0 + ts_cos(kPi * frac));
  double gamma = pow(p[4], i);
  if (p[6] != 0.0) return p[1] + (p[0] - p[1]) * gamma * c;  // Keras: the swing shrinks
  return p[1] + (p[0] * gamma - p[1]) * c;                     // timm: the peak shrinks
}

// torch CyclicLR, in torch's order of operations. mode 0 triangular, 1 triangular2, 2 exp_range.
template <typename T>
TS_HD double cyclic(const double* p, const T& time) {
  const double t = clock(time);
  double total = p[2] + p[3];
  double ratio = p[2] / total;
  double cycle = floor(1.0 + t / total);
  double x = 1.0 + t / total - cycle;
  double into;
  if (exact_remainder(time, total, &into)) {  // past 2**53: the cycle and the place in it in int64
    cycle = floor_div(time, total) + 1.0;
    x = into / total;
  }
  // Clamped to [0, 1] so that rounding never carries the LR past base or max (nor below 0).
  double scale = ts_clamp01((x <= ratio) ? x / ratio : (x - 1.0) / (ratio - 1.0));
  double height = (p[1] - p[0]) * scale;
  if (height == 0.0) return p[0];  // at the bottom of a cycle: no 0 * inf from a growing scale
  double arg = (p[6] != 0.0) ? t : cycle;
  double fn = 1.0;
  if (p[4] == 1.0) fn = 1.0 / pow(2.0, arg - 1.0);
  else if (p[4] == 2.0) fn = pow(p[5], arg);
  return p[0] + height * fn;
}

// Warmup from init to peak over `steps`, then peak. Shapes: linear, exponential (geometric), constant.
template <typename T>
TS_HD double warmup(const double* p, const T& time) {
  if (at_or_past(time, p[2])) return p[1];
  double frac = clock(time) / p[2];
  if (p[3] == 1.0) return p[0] * pow(p[1] / p[0], frac);
  if (p[3] == 2.0) return p[0];
  return p[0] + (p[1] - p[0]) * frac;
}

// Anneal from start to end over `steps`, then end. Shapes: linear, cosine, 1-sqrt, exponential.
template <bool kCosFallback = true, typename T>
TS_HD double anneal(const double* p, const T& t) {
  double frac = ts_min(clock(t), p[2]) / p[2];
  if (frac == 0.0) return p[0];  // exactly start at the start
  double w;  // weight of start
  if (p[3] == 1.0) w = 0.5 * (1.0 + ts_cos<kCosFallback>(kPi * frac));
  else if (p[3] == 2.0) w = 1.0 - sqrt(frac);
  else if (p[3] == 3.0) return p[0] * pow(p[1] / p[0], frac);
  else w = 1.0 - frac;
  return p[1] + (p[0] - p[1]) * w;
}

// Interpolation through (time, value) points; flat before the first and after the last.
template <typename T>
TS_HD double interpolate(const double* p, const double* aux, int32_t a, int32_t n, const T& t) {
  const double* times = aux + a;
  const double* values = aux + a + n;
  if (!strictly_past(t, times[0])) return values[0];
  if (at_or_past(t, times[n - 1])) return values[n - 1];
  int32_t k = count_passed(times, n, t, false);  // times[k-1] <= t < times[k]
  double lo = values[k - 1], hi = values[k];
  double frac = clock(minus(t, times[k - 1])) / (times[k] - times[k - 1]);
  if (frac == 0.0) return lo;  // through every point exactly
  if (p[0] != 0.0) return hi + (lo - hi) * 0.5 * (1.0 + ts_cos(kPi * frac));
  return lo + (hi - lo) * frac;
}

// timm TanhLRScheduler: final + (init - final) / 2 * (1 - tanh(lb (1 - t/T) + ub t/T)), final past T.
template <typename T>
TS_HD double tanh_decay(const double* p, const T& t) {
  if (at_or_past(t, p[2])) return p[1];
  double tr = clock(t) / p[2];
  return p[1] + 0.5 * (p[0] - p[1]) * (1.0 - tanh(p[3] * (1.0 - tr) + p[4] * tr));
}

// REX (Chen, Wolfe, Kyrillidis 2022): final + (init - final) z / (1/2 + z/2), z = 1 - min(t, T)/T. Decays
// slower than linear early on and faster near the end; exactly init at t = 0 and final from T on.
template <typename T>
TS_HD double rex_decay(const double* p, const T& t) {
  const double z = 1.0 - ts_min(clock(t), p[2]) / p[2];
  if (z == 1.0) return p[0];  // exactly init at the start (final + (init - final) may round)
  return p[1] + (p[0] - p[1]) * z / (0.5 + 0.5 * z);
}

// A signal-driven factor: the value its rule last computed for this group (torchsched._signals keeps
// it on the params' device), or 1 where no factor table is passed (values() of a spec, the guard).
TS_HD double signal_factor(const double* p, const Ctx& ctx) {
  return ctx.signals != nullptr ? ctx.signals[static_cast<int64_t>(p[0])] : 1.0;
}

// ---- evaluation ------------------------------------------------------------------------------

// The leaf's value at t: one case per leaf row of families.def, calling its FORMULA as its CALL says.
#define TS_LEAF_CASE_OF_T(NAME, FORMULA) case OP_##NAME: return FORMULA(op.p, t);
#define TS_LEAF_CASE_OF_TABLE(NAME, FORMULA) case OP_##NAME: return FORMULA(op.p, aux, op.a, op.b, t);
#define TS_LEAF_CASE_OF_OP(NAME, FORMULA) case OP_##NAME: return FORMULA(op, aux, clock(t), ctx);
#define TS_LEAF_CASE_OF_CTX(NAME, FORMULA) case OP_##NAME: return FORMULA(op.p, ctx);
#define TS_LEAF_CASE_NODE(NAME, FORMULA)
template <typename T>
TS_HD double eval_leaf(const Op& op, const double* aux, const T& t, const Ctx& ctx) {
  switch (op.code) {
#define TS_FAMILY(NAME, CODE, PY_NAME, KIND, PARAMS, POSITIVE, INTEGER, OPTIONAL, PER_GROUP, SPLIT, TABLE, CALL, \
                  FORMULA)                                                                                       \
    TS_LEAF_CASE_##CALL(NAME, FORMULA)
#include "families.def"
    default: return 0.0;  // unreachable: programs are validated before they reach here
  }
}
#undef TS_LEAF_CASE_OF_T
#undef TS_LEAF_CASE_OF_TABLE
#undef TS_LEAF_CASE_OF_OP
#undef TS_LEAF_CASE_OF_CTX
#undef TS_LEAF_CASE_NODE

// Walks the program rooted at `root` once, without recursion: the value is the product of the leaves
// it reaches, each on its own clock. Product visits every child; sequence and shift visit one child on
// a shifted clock, and a frame remembers where to resume and which clock to restore.
template <typename T>
TS_HD double evaluate_tree(const Op* ops, const double* aux, int32_t root, T t, const Ctx& ctx) {
  int32_t resume_at[kMaxDepth], jump_to[kMaxDepth];
  T saved_t[kMaxDepth];
  int depth = 0;
  int32_t end = root + ops[root].size;
  int32_t i = root;
  double acc = 1.0;
  for (;;) {
    while (depth > 0 && i == resume_at[depth - 1]) {
      --depth;
      i = jump_to[depth];
      t = saved_t[depth];
    }
    if (i >= end) break;
    const Op& op = ops[i];
    switch (op.code) {
      case OP_PRODUCT: ++i; break;
      case OP_SCALE: acc *= op.p[0]; ++i; break;
      case OP_SHIFT: {
        resume_at[depth] = i + op.size; jump_to[depth] = i + op.size; saved_t[depth] = t; ++depth;
        t = plus(t, op.p[0]);
        ++i;
        break;
      }
      case OP_SEQUENCE: {
        int32_t k = count_passed(aux + op.a, op.b - 1, t, false);
        int32_t child = i + 1;
        for (int32_t c = 0; c < k; ++c) child += ops[child].size;
        resume_at[depth] = child + ops[child].size; jump_to[depth] = i + op.size; saved_t[depth] = t; ++depth;
        if (k > 0) t = minus(t, aux[op.a + k - 1]);
        i = child;
        break;
      }
      default: acc *= eval_leaf(op, aux, t, ctx); ++i; break;
    }
  }
  return acc;
}

// The program's value at t. The two commonest shapes, a bare family and a sequence whose current piece
// is a family (warmup >> decay), skip the general walker and its frames.
template <typename T>
TS_HD double evaluate(const Op* ops, const double* aux, int32_t root, const T& t, const Ctx& ctx) {
  const Op& op = ops[root];
  if (op.code < OP_LEAF_END) return eval_leaf(op, aux, t, ctx);
  if (op.code == OP_SEQUENCE) {
    int32_t k = count_passed(aux + op.a, op.b - 1, t, false);
    int32_t child = root + 1;
    for (int32_t c = 0; c < k; ++c) child += ops[child].size;
    if (ops[child].code < OP_LEAF_END)
      return (k > 0) ? eval_leaf(ops[child], aux, minus(t, aux[op.a + k - 1]), ctx) : eval_leaf(ops[child], aux, t, ctx);
  }
  return evaluate_tree(ops, aux, root, t, ctx);
}


}  // namespace torchsched
