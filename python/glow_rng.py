#!/usr/bin/python3
"""The project's random numbers (docs/model.md section 10.5, libcommon/base/rng.h)
in NumPy alone, so that Python code can draw the very numbers the tools draw:

  u32_at(seed, stream, index)        word `index` of the stream (index: an array)
  uniform_at(seed, stream, index)    (word >> 8) * 2^-24, as float32
  normal_at(seed, stream, index)     Box-Muller on words 2i and 2i+1 in float64,
                                     rounded to float32
  dequant_noise(seed, first, n, shape, n_bits)
                                     the noise glow-bpd and glow-train add to images
                                     first .. first+n-1 (stream 2), float32 [n, *shape]
  sample_eps(seed, level, first, n, c, h, w)
                                     the standard normals glow-sample draws at a level
                                     (the top is level L-1), float32 [n, c, h, w]
"""
import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)


def u32_at(seed, stream, index):
    i = np.asarray(index, dtype=np.uint64)
    c0 = (i >> np.uint64(2)) & MASK
    c1 = (i >> np.uint64(34)) & MASK
    c2 = np.full_like(i, stream & 0xFFFFFFFF)
    c3 = np.full_like(i, (stream >> 32) & 0xFFFFFFFF)
    k0, k1 = seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c0, c1, c2, c3 = hi1 ^ c1 ^ np.uint64(k0), lo1, hi0 ^ c3 ^ np.uint64(k1), lo0
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    words = np.stack([c0, c1, c2, c3])
    return np.take_along_axis(words, (i & np.uint64(3)).astype(np.int64)[None], 0)[0].astype(np.uint32)


def uniform_at(seed, stream, index):
    return ((u32_at(seed, stream, index) >> np.uint32(8)).astype(np.float32) *
            np.float32(1.0 / 16777216.0))


def normal_at(seed, stream, index):
    i = np.asarray(index, dtype=np.uint64)
    a = u32_at(seed, stream, np.uint64(2) * i).astype(np.float64)
    b = u32_at(seed, stream, np.uint64(2) * i + np.uint64(1)).astype(np.float64)
    u1 = (a + 1.0) * (1.0 / 4294967296.0)
    u2 = b * (1.0 / 4294967296.0)
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)


def sample_eps(seed, level, first, n, c, h, w):
    stream = 4 + ((level + 1) << 32)
    i, j, p = np.ix_(np.arange(first, first + n, dtype=np.uint64), np.arange(c, dtype=np.uint64),
                     np.arange(h * w, dtype=np.uint64))
    idx = (i * np.uint64(h * w) + p) * np.uint64(c) + j
    return normal_at(seed, stream, idx.ravel()).reshape(n, c, h, w)


def dequant_noise(seed, first, n, shape, n_bits=8):
    d = int(np.prod(shape))
    idx = (np.arange(first, first + n, dtype=np.uint64)[:, None] * np.uint64(d) +
           np.arange(d, dtype=np.uint64)[None, :])
    u = uniform_at(seed, 2, idx.ravel())
    return (u / np.float32(2 ** n_bits)).astype(np.float32).reshape((n,) + tuple(shape))
