// Normalisation + activation pairs of MambaAD's layers on float32 CPU tensors, forward and backward, each in one
// or two passes over memory (PyTorch runs every factor as its own pass, forward and backward):
//
// 1. InstanceNorm (no affine parameters, biased variance) followed by SiLU, on channels-last maps: the "IN -> SiLU"
//    pair of the local convolution branches, without leaving channels-last memory (PyTorch's CPU instance norm
//    reshapes a channels-last map into a channels-first copy, and back in the backward).
//
//      x, y, dy, dx : (batch, P, C) contiguous: P positions of a channels-last map, C channels
//      mean, rstd   : (batch, C); the mean as two floats, mean_hi + mean_lo (mean_lo: the rounding error of mean_hi)
//
//      forward:  xhat = (x - mean) rstd,  rstd = 1 / sqrt(var + eps),  y = xhat sigmoid(xhat)
//      backward: g = dy (s + xhat s (1 - s)) with s = sigmoid(xhat),
//                dx = rstd (g - mean_p(g) - xhat mean_p(g xhat))
//
//    Means over positions are taken per (batch, channel) as in torch.nn.functional.instance_norm; the variance is
//    the mean square of x - mean (a second pass, not E[x^2] - mean^2). Sums run over blocks of kBlock positions in
//    float vectors and across blocks in double, the mean's of x - x[0] (a shift by the first position); x - mean is
//    taken as (x - mean_hi) - mean_lo. So a mean large against the spread costs no precision.
//    item = (b, block of W channels), W = 16 floats with AVX-512, else 8.
//
// 2. LayerNorm over the last axis (with weight and bias) times SiLU of a gate: SS2D's out_norm(y) * silu(z).
//
//      y, z, out, dout, dy, dz : (M, C) contiguous rows      mean, rstd : (M,)      w, b : (C,)
//
//      forward:  yhat = (y - mean) rstd,  ln = yhat w + b,  out = ln silu(z)
//      backward: dln = dout silu(z),  dz = dout ln silu'(z),  g = dln w,
//                dy = rstd (g - mean_c(g) - yhat mean_c(g yhat)),  dw = sum_rows dln yhat,  db = sum_rows dln
//
//    item = a block of kRows rows; the weight and bias gradients are summed per item (dw_part, db_part: (items, C))
//    and the items' sums added by the caller.
//
// The readable oracle is torch (ssmad/layers/norm_act.py, tests/unit/layers/test_norm_act.py).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernel_common.h"

namespace {

using ssmad_kernels::DenormalGuard;
using ssmad_kernels::kLog2e;
using ssmad_kernels::run_items;
using ssmad_kernels::vexp2;

typedef ssmad_kernels::VecOf<float>::V V;
constexpr int W = ssmad_kernels::VecOf<float>::W;
constexpr int64_t kBlock = 64;

inline V load(const float* src, int nl) {
  V v = V{};
  if (nl == W)
    std::memcpy(&v, src, sizeof(V));
  else
    std::memcpy(&v, src, sizeof(float) * nl);
  return v;
}

inline void store(float* dst, V v, int nl) {
  if (nl == W)
    std::memcpy(dst, &v, sizeof(V));
  else
    std::memcpy(dst, &v, sizeof(float) * nl);
}

inline V sigmoid(V x) { return 1.0f / (1.0f + vexp2(x * -(float)kLog2e)); }

// sum over p of f(p) for a block of channels: float vectors inside blocks of kBlock positions, doubles across them
template <typename F>
inline void sum_positions(int64_t P, const F& f, double* out) {
  for (int lane = 0; lane < W; ++lane) out[lane] = 0.0;
  for (int64_t p0 = 0; p0 < P; p0 += kBlock) {
    const int64_t p1 = std::min(P, p0 + kBlock);
    V s0 = V{}, s1 = V{};
    int64_t p = p0;
    for (; p + 2 <= p1; p += 2) s0 += f(p), s1 += f(p + 1);
    if (p < p1) s0 += f(p);
    const V s = s0 + s1;
    for (int lane = 0; lane < W; ++lane) out[lane] += (double)s[lane];
  }
}

void forward_item(const float* x, float* y, float* mean, float* mean_lo, float* rstd, int64_t P, int64_t C, float eps,
                  int64_t item) {
  const int64_t nblk = (C + W - 1) / W, b = item / nblk, c0 = (item % nblk) * W;
  const int nl = (int)std::min<int64_t>(W, C - c0);
  const float* xb = x + b * P * C + c0;
  float* yb = y + b * P * C + c0;
  double acc[W];
  const V shift = load(xb, nl);  // sums of x - x[0]: small terms, whatever the mean's size
  sum_positions(P, [&](int64_t p) { return load(xb + p * C, nl) - shift; }, acc);
  V m = V{}, mlo = V{};
  for (int lane = 0; lane < W; ++lane) {
    const double mu = (double)shift[lane] + acc[lane] / (double)P;
    m[lane] = (float)mu;
    mlo[lane] = (float)(mu - (double)m[lane]);
  }
  sum_positions(
      P,
      [&](int64_t p) {
        const V d = (load(xb + p * C, nl) - m) - mlo;
        return d * d;
      },
      acc);
  V r = V{};
  for (int lane = 0; lane < nl; ++lane) {
    r[lane] = (float)(1.0 / std::sqrt(acc[lane] / (double)P + (double)eps));
    mean[b * C + c0 + lane] = m[lane];
    mean_lo[b * C + c0 + lane] = mlo[lane];
    rstd[b * C + c0 + lane] = r[lane];
  }
  for (int64_t p = 0; p < P; ++p) {
    const V xh = ((load(xb + p * C, nl) - m) - mlo) * r;
    store(yb + p * C, xh * sigmoid(xh), nl);
  }
}

void backward_item(const float* x, const float* dy, const float* mean, const float* mean_lo, const float* rstd,
                   float* dx, int64_t P, int64_t C, int64_t item) {
  const int64_t nblk = (C + W - 1) / W, b = item / nblk, c0 = (item % nblk) * W;
  const int nl = (int)std::min<int64_t>(W, C - c0);
  const float* xb = x + b * P * C + c0;
  const float* dyb = dy + b * P * C + c0;
  float* dxb = dx + b * P * C + c0;
  const V m = load(mean + b * C + c0, nl), mlo = load(mean_lo + b * C + c0, nl), r = load(rstd + b * C + c0, nl);
  // pass 1: g (written to dx) and its two sums
  double sum_g[W], sum_gx[W];
  for (int lane = 0; lane < W; ++lane) sum_g[lane] = sum_gx[lane] = 0.0;
  for (int64_t p0 = 0; p0 < P; p0 += kBlock) {
    const int64_t p1 = std::min(P, p0 + kBlock);
    V a = V{}, q = V{};
    for (int64_t p = p0; p < p1; ++p) {
      const V xh = ((load(xb + p * C, nl) - m) - mlo) * r;
      const V s = sigmoid(xh);
      const V g = load(dyb + p * C, nl) * (s + xh * s * (1.0f - s));
      store(dxb + p * C, g, nl);
      a += g;
      q += g * xh;
    }
    for (int lane = 0; lane < W; ++lane) sum_g[lane] += (double)a[lane], sum_gx[lane] += (double)q[lane];
  }
  V mg = V{}, mgx = V{};
  for (int lane = 0; lane < W; ++lane) {
    mg[lane] = (float)(sum_g[lane] / (double)P);
    mgx[lane] = (float)(sum_gx[lane] / (double)P);
  }
  // pass 2: dx = rstd (g - mean(g) - xhat mean(g xhat))
  for (int64_t p = 0; p < P; ++p) {
    const V xh = ((load(xb + p * C, nl) - m) - mlo) * r;
    store(dxb + p * C, r * (load(dxb + p * C, nl) - mg - xh * mgx), nl);
  }
}

constexpr int64_t kRows = 64;

// Sum of the lanes of one vector.
inline float lane_sum(V v) { return ssmad_kernels::sum_one(v); }

void ln_gate_forward_item(const float* y, const float* z, const float* w, const float* bias, float* out, float* mean,
                          float* rstd, int64_t M, int64_t C, float eps, int64_t item) {
  const int64_t r0 = item * kRows, r1 = std::min(M, r0 + kRows);
  for (int64_t row = r0; row < r1; ++row) {
    const float* yr = y + row * C;
    const float* zr = z + row * C;
    float* outr = out + row * C;
    V s = V{};
    for (int64_t c = 0; c < C; c += W) s += load(yr + c, (int)std::min<int64_t>(W, C - c));
    const float m = lane_sum(s) / (float)C;
    V q = V{};
    for (int64_t c = 0; c < C; c += W) {
      const int nl = (int)std::min<int64_t>(W, C - c);
      V d = load(yr + c, nl) - m;
      if (nl < W)
        for (int lane = nl; lane < W; ++lane) d[lane] = 0.0f;
      q += d * d;
    }
    const float r = 1.0f / std::sqrt(lane_sum(q) / (float)C + eps);
    mean[row] = m;
    rstd[row] = r;
    for (int64_t c = 0; c < C; c += W) {
      const int nl = (int)std::min<int64_t>(W, C - c);
      const V ln = (load(yr + c, nl) - m) * r * load(w + c, nl) + load(bias + c, nl);
      const V zv = load(zr + c, nl);
      store(outr + c, ln * (zv * sigmoid(zv)), nl);
    }
  }
}

void ln_gate_backward_item(const float* y, const float* z, const float* w, const float* bias, const float* mean,
                           const float* rstd, const float* dout, float* dy, float* dz, float* dw_part, float* db_part,
                           int64_t M, int64_t C, int64_t item) {
  const int64_t r0 = item * kRows, r1 = std::min(M, r0 + kRows);
  float* dwi = dw_part + item * C;
  float* dbi = db_part + item * C;
  for (int64_t c = 0; c < C; ++c) dwi[c] = dbi[c] = 0.0f;
  for (int64_t row = r0; row < r1; ++row) {
    const float* yr = y + row * C;
    const float* zr = z + row * C;
    const float* gr = dout + row * C;
    float* dyr = dy + row * C;
    float* dzr = dz + row * C;
    const float m = mean[row], r = rstd[row];
    // pass 1: dz, the weight and bias gradients, and g = dln w (kept in dy) with its two row sums
    V a = V{}, q = V{};
    for (int64_t c = 0; c < C; c += W) {
      const int nl = (int)std::min<int64_t>(W, C - c);
      const V yh = (load(yr + c, nl) - m) * r;
      const V wv = load(w + c, nl);
      const V ln = yh * wv + load(bias + c, nl);
      const V zv = load(zr + c, nl), sg = sigmoid(zv);
      const V go = load(gr + c, nl);
      const V dln = go * (zv * sg);
      store(dzr + c, go * ln * (sg * (1.0f + zv * (1.0f - sg))), nl);
      store(dwi + c, load(dwi + c, nl) + dln * yh, nl);
      store(dbi + c, load(dbi + c, nl) + dln, nl);
      const V g = dln * wv;  // zero in the lanes past C (w loads as zero there)
      store(dyr + c, g, nl);
      a += g;
      q += g * yh;
    }
    const float ma = lane_sum(a) / (float)C, mq = lane_sum(q) / (float)C;
    // pass 2: dy = rstd (g - mean(g) - yhat mean(g yhat))
    for (int64_t c = 0; c < C; c += W) {
      const int nl = (int)std::min<int64_t>(W, C - c);
      const V yh = (load(yr + c, nl) - m) * r;
      store(dyr + c, r * (load(dyr + c, nl) - ma - yh * mq), nl);
    }
  }
}

}  // namespace

#define SSMAD_EXPORT extern "C" __attribute__((visibility("default")))

SSMAD_EXPORT int ssmad_norm_abi_version() { return 4; }

#ifdef _OPENMP
SSMAD_EXPORT int ssmad_norm_openmp() { return 1; }
#else
SSMAD_EXPORT int ssmad_norm_openmp() { return 0; }
#endif

// Items: batch * ceil(C / W), split into `threads` ranges. mean holds mean_hi (batch, C) then mean_lo (batch, C).
SSMAD_EXPORT int ssmad_in_silu_fwd_f32(const float* x, float* y, float* mean, float* rstd, int64_t batch, int64_t P,
                                       int64_t C, double eps, int64_t threads) {
  const int64_t items = batch * ((C + W - 1) / W);
  run_items(items, threads, [&](int64_t i0, int64_t i1) {
    DenormalGuard guard;
    for (int64_t i = i0; i < i1; ++i) forward_item(x, y, mean, mean + batch * C, rstd, P, C, (float)eps, i);
  });
  return 0;
}

SSMAD_EXPORT int ssmad_in_silu_bwd_f32(const float* x, const float* dy, const float* mean, const float* rstd,
                                       float* dx, int64_t batch, int64_t P, int64_t C, int64_t threads) {
  const int64_t items = batch * ((C + W - 1) / W);
  run_items(items, threads, [&](int64_t i0, int64_t i1) {
    DenormalGuard guard;
    for (int64_t i = i0; i < i1; ++i) backward_item(x, dy, mean, mean + batch * C, rstd, dx, P, C, i);
  });
  return 0;
}

// Work items (blocks of rows) of M rows: the first dimension of the backward's dw_part and db_part.
SSMAD_EXPORT int64_t ssmad_ln_gate_items(int64_t M) { return (M + kRows - 1) / kRows; }

// Items: ssmad_ln_gate_items(M) blocks of rows, split into `threads` ranges.
SSMAD_EXPORT int ssmad_ln_gate_fwd_f32(const float* y, const float* z, const float* w, const float* bias, float* out,
                                       float* mean, float* rstd, int64_t M, int64_t C, double eps, int64_t threads) {
  run_items(ssmad_ln_gate_items(M), threads, [&](int64_t i0, int64_t i1) {
    DenormalGuard guard;
    for (int64_t i = i0; i < i1; ++i) ln_gate_forward_item(y, z, w, bias, out, mean, rstd, M, C, (float)eps, i);
  });
  return 0;
}

// dw_part, db_part: (ssmad_ln_gate_items(M), C), one row of sums per item.
SSMAD_EXPORT int ssmad_ln_gate_bwd_f32(const float* y, const float* z, const float* w, const float* bias,
                                       const float* mean, const float* rstd, const float* dout, float* dy, float* dz,
                                       float* dw_part, float* db_part, int64_t M, int64_t C, int64_t threads) {
  run_items(ssmad_ln_gate_items(M), threads, [&](int64_t i0, int64_t i1) {
    DenormalGuard guard;
    for (int64_t i = i0; i < i1; ++i)
      ln_gate_backward_item(y, z, w, bias, mean, rstd, dout, dy, dz, dw_part, db_part, M, C, i);
  });
  return 0;
}
