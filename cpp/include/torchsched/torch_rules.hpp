// torchsched: torch's rules (torch.optim.lr_scheduler and swa_utils, 2.13), in torch's order of operations.
// The CPU engine, the CUDA kernel and the drop-in classes' C-level step all call these.
#pragma once

#include "families.hpp"

namespace torchsched {

// Chainable rules give the new LR from the previous one (prev), as torch's get_lr does inside step().
// The chainable rules, CyclicLR and OneCycleLR (the rows of families.def with SPLIT 1) are split into the
// terms one step shares between all groups (torch_coef) and the per-group rest (torch_apply), so an engine
// stepping many groups computes the shared terms once and still gets, bit for bit, what evaluating each
// group on its own gives.
//
// The constructor's initial step: ExponentialLR, PolynomialLR and CosineAnnealingLR leave the LR
// unchanged there, and these ops do the same at t = 0 unless their `chain_at_0` parameter is 1. Callers
// that run the initial step themselves (torchsched.lr_scheduler) set it, so that a schedule restarted
// by hand (last_epoch = -1, then step()) gets torch's rule at t = 0 too.

// torch's Python calls the C library's cos (math.cos), so its twins call the platform's cos too (the C
// library's on the host, CUDA's on the device) and give torch's numbers bit for bit on the CPU. The native
// families use ts_cos.
TS_HD double platform_cos(double x) { return cos(x); }

struct TorchCoef {
  double c0, c1;
  int32_t kind;  // 0: the LR stays what it was; 1: prev * c0; above: op-specific (see torch_apply)
};

// Python's float floor division (a // b), which floor(a / b) can miss by one when a / b rounds.
TS_HD double py_floordiv(double a, double b) {
  double mod = fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0.0) != (mod < 0.0))) div -= 1.0;
  if (div == 0.0) return copysign(0.0, a / b);
  double f = floor(div);
  if (div - f > 0.5) f += 1.0;
  return f;
}

// SWALR's anneal function: linear, or (1 - cos(pi x)) / 2.
TS_HD double swa_alpha(double x, double linear) {
  return linear != 0.0 ? x : (1.0 - platform_cos(kPi * x)) / 2.0;
}

// OneCycleLR: the phase that holds t, and its annealing term (cos(pi pct) + 1, or pct when linear).
TS_HD void one_cycle_phase(const double* p, double t, TorchCoef& k) {
  const int32_t phases = (p[1] != 0.0) ? 3 : 2;
  double start = 0.0;
  for (int32_t i = 0; i < phases; ++i) {
    double end = p[2 + i];
    if (t <= end || i == phases - 1) {
      double pct = (t - start) / (end - start);
      k.c0 = (p[0] != 0.0) ? pct : platform_cos(kPi * pct) + 1.0;
      k.kind = 10 + i;
      return;
    }
    start = end;
  }
}

// The per-step terms, for the ops whose row in families.def says SPLIT. Only the parameters a scheduler
// shares between its groups are read here: those in the row's PER_GROUP mask are read by torch_apply.
// `fn` is CyclicLR's scale_fn value when mode 3 (a Python scale_fn) supplies it.
TS_HD void torch_coef(const Op& op, const double* aux, double t, double fn, TorchCoef& k) {
  const double* p = op.p;
  k.c0 = 1.0; k.c1 = 0.0; k.kind = 0;
  switch (op.code) {
    case OP_TORCH_STEP:
      if (t != 0.0 && fmod(t, p[0]) == 0.0) { k.kind = 1; k.c0 = p[1]; }
      return;
    case OP_TORCH_MULTISTEP: {
      int32_t hits = count_passed(aux + op.a, op.b, t, false) - count_passed(aux + op.a, op.b, t, true);
      if (hits != 0) { k.kind = 1; k.c0 = pow(p[0], (double)hits); }
      return;
    }
    case OP_TORCH_CONSTANT:
      if (t == 0.0) { k.kind = 1; k.c0 = p[0]; }
      else if (t == p[1]) { k.kind = 1; k.c0 = 1.0 / p[0]; }
      return;
    case OP_TORCH_LINEAR:
      if (t == 0.0) { k.kind = 1; k.c0 = p[0]; }
      else if (!(t > p[2])) { k.kind = 1; k.c0 = 1.0 + (p[1] - p[0]) / (p[2] * p[0] + (t - 1.0) * (p[1] - p[0])); }
      return;
    case OP_TORCH_EXPONENTIAL:
      if (t != 0.0 || p[1] != 0.0) { k.kind = 1; k.c0 = p[0]; }
      return;
    case OP_TORCH_POLYNOMIAL:
      if ((t != 0.0 || p[2] != 0.0) && !(t > p[0])) {
        k.kind = 1;
        k.c0 = pow((1.0 - t / p[0]) / (1.0 - (t - 1.0) / p[0]), p[1]);
      }
      return;
    case OP_TORCH_COSINE: {
      const double T = p[2];
      if (t == 0.0 && p[3] == 0.0) return;
      if (fmod(t - 1.0 - T, 2.0 * T) == 0.0) { k.kind = 2; k.c0 = 1.0 - platform_cos(kPi / T); }
      else { k.kind = 3; k.c0 = (1.0 + platform_cos(kPi * t / T)) / (1.0 + platform_cos(kPi * (t - 1.0) / T)); }
      return;
    }
    case OP_TORCH_SWA: {
      // t is the scheduler's step count minus one
      const double step = (p[1] == 0.0) ? ts_max(1.0, t) : t;
      const double denom = ts_max(1.0, p[1]);
      k.kind = 4;
      k.c0 = swa_alpha(ts_clamp01((step - 1.0) / denom), p[2]);  // the previous step's alpha
      k.c1 = swa_alpha(ts_clamp01(step / denom), p[2]);
      return;
    }
    case OP_TORCH_CYCLIC: {
      const double cycle = floor(1.0 + t / p[2]);
      const double x = 1.0 + t / p[2] - cycle;
      k.kind = 5;
      k.c0 = (x <= p[3]) ? x / p[3] : (x - 1.0) / (p[3] - 1.0);
      const double arg = (p[6] != 0.0) ? t : cycle;
      if (p[4] == 1.0) k.c1 = 1.0 / pow(2.0, arg - 1.0);
      else if (p[4] == 2.0) k.c1 = pow(p[5], arg);
      else if (p[4] == 3.0) k.c1 = fn;
      else k.c1 = 1.0;
      return;
    }
    case OP_TORCH_ONE_CYCLE:
      one_cycle_phase(p, t, k);
      return;
    default:
      return;
  }
}

// float32 LR tensors: torch's expressions mix the LR tensor (and base LR tensors, clones of it) with Python
// floats, and each tensor operation casts the float to float32 and rounds its result to float32. f32() is that
// rounding: a float32 operation computed in double and rounded once gives the float32 result exactly (double
// has more than twice float32's precision), so these twins give torch's float32 LRs bit for bit.
TS_HD double f32(double x) { return static_cast<double>(static_cast<float>(x)); }

TS_HD double torch_apply_f32(const Op& op, const TorchCoef& k, double prev) {
  const double* p = op.p;
  switch (k.kind) {
    case 1: return f32(prev * f32(k.c0));                                    // group["lr"] * factor
    case 2: return f32(prev + f32(f32(f32(p[0] - f32(p[1])) * f32(k.c0)) / 2.0));  // lr + (base - eta_min) * c / 2
    case 3: return f32(f32(f32(k.c0) * f32(prev - f32(p[1]))) + f32(p[1])); // c * (lr - eta_min) + eta_min
    case 4: {                                                                // SWALR
      if (k.c0 == 1.0) return p[0] * k.c1 + p[0] * (1.0 - k.c1);            // the start is swa_lr: all floats
      const double initial = f32(f32(prev - f32(k.c0 * p[0])) / f32(1.0 - k.c0));
      return f32(f32(p[0] * k.c1) + f32(initial * f32(1.0 - k.c1)));
    }
    default: return prev;  // kind 0; CyclicLR and OneCycleLR compute in floats from their own terms
  }
}

TS_HD double torch_apply(const Op& op, const TorchCoef& k, double prev, bool float32 = false) {
  const double* p = op.p;
  if (float32 && k.kind >= 1 && k.kind <= 4) return torch_apply_f32(op, k, prev);
  switch (k.kind) {
    case 0: return prev;
    case 1: return prev * k.c0;
    case 2: return prev + (p[0] - p[1]) * k.c0 / 2.0;   // CosineAnnealingLR past a half period
    case 3: return k.c0 * (prev - p[1]) + p[1];         // CosineAnnealingLR
    case 4: {                                            // SWALR: back out the start, re-anneal
      const double initial = (k.c0 == 1.0) ? p[0] : (prev - k.c0 * p[0]) / (1.0 - k.c0);
      return p[0] * k.c1 + initial * (1.0 - k.c1);
    }
    case 5: {                                            // CyclicLR: lr from low, momentum from high
      const double height = (p[1] - p[0]) * k.c0;
      return (p[7] != 0.0) ? p[1] - height * k.c1 : p[0] + height * k.c1;
    }
    default: {                                           // OneCycleLR phase kind - 10
      const int32_t phase = k.kind - 10;
      const bool three = p[1] != 0.0;
      double start, end;
      if (phase == 0) { start = p[5]; end = p[6]; }
      else if (phase == 1) { start = p[6]; end = three ? p[5] : p[7]; }
      else { start = p[5]; end = p[7]; }
      if (p[0] != 0.0) return (end - start) * k.c0 + start;
      return end + (start - end) / 2.0 * k.c0;
    }
  }
}

// The torch rules one group at a time (what eval_leaf uses).
TS_HD double torch_rule(const Op& op, const double* aux, double t, const Ctx& ctx) {
  TorchCoef k;
  torch_coef(op, aux, t, ctx.prev, k);
  return torch_apply(op, k, ctx.prev, ctx.f32);
}

// Closed forms (torch's _get_closed_form_lr and the rules that are functions of the step). `in` is
// ctx.prev: the period for COSINE_CLOSED with p3 = 1 (CosineAnnealingWarmRestarts' T_i, t being T_cur).
// Takes (and ignores) the aux table, so that every torch op is called alike (families.def, OF_OP).
TS_HD double torch_closed(const Op& op, const double* /*aux*/, double t, const Ctx& ctx) {
  const double* p = op.p;
  const double in = ctx.prev;
  if (ctx.f32) {  // base_lr (a float32 tensor) times a float, or eta_min + (base_lr - eta_min) * c / 2
    switch (op.code) {
      case OP_TORCH_STEP_CLOSED: return f32(p[0] * f32(pow(p[2], py_floordiv(t, p[1]))));
      case OP_TORCH_CONSTANT_CLOSED: return f32(p[0] * f32(p[1] + (t >= p[2] ? 1.0 : 0.0) * (1.0 - p[1])));
      case OP_TORCH_LINEAR_CLOSED: return f32(p[0] * f32(p[1] + (p[2] - p[1]) * ts_min(p[3], t) / p[3]));
      case OP_TORCH_EXPONENTIAL_CLOSED: return f32(p[0] * f32(pow(p[1], t)));
      case OP_TORCH_POLYNOMIAL_CLOSED: return f32(p[0] * f32(pow(1.0 - ts_min(p[1], t) / p[1], p[2])));
      case OP_TORCH_COSINE_CLOSED: {
        const double T = (p[3] != 0.0) ? in : p[2];
        return f32(f32(p[1]) + f32(f32(f32(p[0] - f32(p[1])) * f32(1.0 + platform_cos(kPi * t / T))) / 2.0));
      }
      default: break;
    }
  }
  switch (op.code) {
    case OP_TORCH_STEP_CLOSED: return p[0] * pow(p[2], py_floordiv(t, p[1]));
    case OP_TORCH_CONSTANT_CLOSED: return p[0] * (p[1] + (t >= p[2] ? 1.0 : 0.0) * (1.0 - p[1]));
    case OP_TORCH_LINEAR_CLOSED: return p[0] * (p[1] + (p[2] - p[1]) * ts_min(p[3], t) / p[3]);
    case OP_TORCH_EXPONENTIAL_CLOSED: return p[0] * pow(p[1], t);
    case OP_TORCH_POLYNOMIAL_CLOSED: return p[0] * pow(1.0 - ts_min(p[1], t) / p[1], p[2]);
    case OP_TORCH_COSINE_CLOSED: {
      const double T = (p[3] != 0.0) ? in : p[2];
      return p[1] + (p[0] - p[1]) * (1.0 + platform_cos(kPi * t / T)) / 2.0;
    }
    default: return in;  // OP_TORCH_INPUT
  }
}

}  // namespace torchsched
