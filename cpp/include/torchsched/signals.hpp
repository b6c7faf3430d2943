// torchsched: the average-gradient rule's update of one group, for the CPU fast path (torchsched._signals
// runs the same update as tensor operations on other devices, and tests/test_signals.py checks that the
// two agree bit for bit).
#pragma once

#include <cmath>
#include <cstdint>

#include "common.hpp"

namespace torchsched {

struct GradientRule {
  double ema;         // G_s = ema * G_s + (1 - ema) * G
  double min_factor;  // clamps of G_s / G_0
  double max_factor;
};

// One observation g of a group's G: nothing when the optimizer skipped the step; a non-finite g is only
// counted. G_0 is the first finite, positive g; NaN in g0 or last means "none yet". The factor is
// last / g0 clamped, kept as it was when that is not finite (no G_0 yet, or an overflow).
TS_HD void gradient_observe(const GradientRule& r, double g, bool skipped, double* g0, double* last,
                            double* factor, int64_t* ignored) {
  if (skipped) return;
  if (!isfinite(g)) {
    *ignored += 1;
    return;
  }
  if (isnan(*g0) && g > 0.0) *g0 = g;
  *last = isnan(*last) ? g : *last * r.ema + g * (1.0 - r.ema);
  double ratio = *last / *g0;
  if (ratio < r.min_factor) ratio = r.min_factor;  // NaN stays NaN, as torch.clamp leaves it
  if (ratio > r.max_factor) ratio = r.max_factor;
  if (isfinite(ratio)) *factor = ratio;
}

}  // namespace torchsched
