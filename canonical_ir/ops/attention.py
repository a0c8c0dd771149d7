"""Attention: scaled dot-product attention as ONNX Attention (opset 25: windows, nonpad lengths).

Registered from ``linalg`` (its family's module). Q, K and V are 4-D ``[batch, heads, seq, head_size]``
or 3-D ``[batch, seq, heads * head_size]`` with ``q_num_heads``/``kv_num_heads`` set; the number of
heads attributes are ignored for 4-D inputs (as opsets 23 and 24 do). Grouped-query attention repeats
each key/value head for its group of query heads. A query row with no attendable key gives zeros.
"""
from __future__ import annotations

import numpy as np

from convertkit.canonical_ir import dtypes
from convertkit.canonical_ir.ops.reduce import stable_dims
from convertkit.canonical_ir.ops.registry import InferContext, TensorType, elements, register

ATTRS = {"is_causal": 0, "kv_num_heads": None, "q_num_heads": None, "qk_matmul_output_mode": 0,
         "scale": None, "softcap": 0.0, "softmax_precision": None, "left_window_size": -1,
         "right_window_size": -1}
"""None: the attribute is unset (scale then defaults to 1/sqrt(head_size))."""


def _div(a, b):
    return a // b if isinstance(a, int) and isinstance(b, int) else None


def _mul(a, b):
    return a * b if isinstance(a, int) and isinstance(b, int) else None


def _add(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    return a if b == 0 else b if a == 0 else None


def _dims(ctx: InferContext) -> dict:
    """batch, heads, sequence lengths and head sizes, as known (None = only known at run time)."""
    q, k, v = ctx.shape(0), ctx.shape(1), ctx.shape(2)
    if not len(q) == len(k) == len(v) or len(q) not in (3, 4):
        raise ctx.error(f"Q, K, V must all be 3-D or all 4-D, got ranks {len(q)}, {len(k)}, {len(v)}")
    if len(q) == 3:
        hq, hkv = ctx.attrs["q_num_heads"], ctx.attrs["kv_num_heads"]
        if hq is None or hkv is None:
            raise ctx.error("3-D Q, K, V need the q_num_heads and kv_num_heads attributes")
        d = {"b": q[0], "hq": hq, "hkv": hkv, "sq": q[1], "skv": k[1], "dk": _div(q[2], hq),
             "dv": _div(v[2], hkv)}
    else:
        d = {"b": q[0], "hq": q[1], "hkv": k[1], "sq": q[2], "skv": k[2], "dk": q[3], "dv": v[3]}
    past = ctx.shape(4)[2] if ctx.has(4) else 0
    d["total"] = _add(past, d["skv"])
    d["rank"] = len(q)
    return d


def _infer(ctx: InferContext) -> list[TensorType]:
    if ctx.has(4) != ctx.has(5):
        raise ctx.error("past_key and past_value must be given together")
    if ctx.has(4) and ctx.has(6):
        raise ctx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    precision = ctx.attrs["softmax_precision"]
    if precision is not None and dtypes.from_onnx(precision) is None:
        raise ctx.error(f"softmax_precision={precision} names a type convertkit lacks")
    d, dt = _dims(ctx), ctx.dtype(0)
    if isinstance(d["hq"], int) and isinstance(d["hkv"], int) and d["hq"] % max(d["hkv"], 1):
        raise ctx.error(f"{d['hq']} query heads are not a multiple of {d['hkv']} key/value heads")
    if d["rank"] == 3:
        y = [d["b"], d["sq"], _mul(d["hq"], d["dv"])]
    else:
        y = [d["b"], d["hq"], d["sq"], d["dv"]]
    shapes = [y, [d["b"], d["hkv"], d["total"], d["dk"]], [d["b"], d["hkv"], d["total"], d["dv"]],
              [d["b"], d["hq"], d["sq"], d["total"]]]
    return [(dt, stable_dims(ctx, i, s)) for i, s in enumerate(shapes[:max(ctx.n_outputs, 1)])]


def _macs(ctx: InferContext) -> int:
    """Q K^T and P V: one MAC per score and key (or value) channel; unknown sizes count as 1."""
    d = _dims(ctx)
    return elements([d[k] for k in ("b", "hq", "sq", "total")]) * (elements([d["dk"]]) + elements([d["dv"]]))


def _split_heads(x: np.ndarray, heads: int) -> np.ndarray:
    b, s, hidden = x.shape
    return x.reshape(b, s, heads, hidden // heads).transpose(0, 2, 1, 3)


def _neg_inf_where_not(allowed: np.ndarray, dt: np.dtype) -> np.ndarray:
    return np.where(allowed, dt.type(0), dt.type(-np.inf))


def attention_bias(dt: np.dtype, sq: int, skv: int, mask, offset, is_causal: int, left: int, right: int,
          nonpad) -> np.ndarray:
    """The additive bias (0 or -inf, plus a float mask) broadcastable to [batch, heads, sq, skv]."""
    bias = np.zeros((sq, skv), dt)
    if mask is not None:
        pad = skv - mask.shape[-1]
        if pad > 0:
            mask = np.pad(mask, [(0, 0)] * (mask.ndim - 1) + [(0, pad)],
                          constant_values=False if mask.dtype == bool else -np.inf)
        bias = bias + (_neg_inf_where_not(mask, dt) if mask.dtype == bool else mask.astype(dt))
    if is_causal or left >= 0 or right >= 0:
        off = np.asarray(offset).reshape(-1, 1, 1, 1) if np.ndim(offset) else offset
        diff = np.arange(sq).reshape(sq, 1) + off - np.arange(skv).reshape(1, skv)  # query pos - key pos
        allowed = np.ones(np.shape(diff), bool)
        if is_causal:
            allowed &= diff >= 0
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = bias + _neg_inf_where_not(allowed, dt)
    if nonpad is not None:
        keep = np.arange(skv) < np.asarray(nonpad).reshape(-1, 1)
        bias = bias + _neg_inf_where_not(keep, dt).reshape(-1, 1, 1, skv)
    return bias


def _softmax(x: np.ndarray) -> np.ndarray:
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - np.where(np.isneginf(m), x.dtype.type(0), m))
    s = np.sum(e, axis=-1, keepdims=True)
    return e / np.where(s == 0, x.dtype.type(1), s)


@register("Attention", inputs=["Q", "K", "V", "attn_mask?", "past_key?", "past_value?", "nonpad_kv_seqlen?"],
          outputs=["Y", "present_key?", "present_value?", "qk_matmul_output?"], attrs=ATTRS, infer=_infer,
          macs=_macs)
def attention(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *,
              is_causal, kv_num_heads, q_num_heads, qk_matmul_output_mode, scale, softcap, softmax_precision,
              left_window_size, right_window_size):
    """softmax(Q K^T * scale + bias) V; Q and K are each scaled by sqrt(scale) first (against overflow).

    Outputs: Y, present key/value (past concatenated with K/V), and the QK scores after the stage
    ``qk_matmul_output_mode`` selects (0 raw, 1 soft-capped, 2 plus bias, 3 softmax).
    """
    if (past_key is None) != (past_value is None):
        raise ValueError("past_key and past_value must be given together")
    if nonpad_kv_seqlen is not None and past_key is not None:
        raise ValueError("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    three_d = q.ndim == 3
    if three_d:
        q, k, v = _split_heads(q, q_num_heads), _split_heads(k, kv_num_heads), _split_heads(v, kv_num_heads)
    dt = q.dtype
    present_k = k if past_key is None else np.concatenate([past_key, k], axis=2)
    present_v = v if past_value is None else np.concatenate([past_value, v], axis=2)
    sq, skv = q.shape[2], present_k.shape[2]
    if past_key is not None:
        offset = past_key.shape[2]
    elif nonpad_kv_seqlen is not None:
        offset = np.asarray(nonpad_kv_seqlen).reshape(-1) - sq
    else:
        offset = 0
    bias = attention_bias(dt, sq, skv, attn_mask, offset, is_causal, left_window_size, right_window_size,
                 nonpad_kv_seqlen)
    hq, hkv = q.shape[1], present_k.shape[1]
    kk, vv = present_k, present_v
    if hq != hkv:
        if hq % hkv:
            raise ValueError(f"{hq} query heads are not a multiple of {hkv} key/value heads")
        kk, vv = np.repeat(kk, hq // hkv, axis=1), np.repeat(vv, hq // hkv, axis=1)
    s = dt.type(np.sqrt(1.0 / np.sqrt(q.shape[3]) if scale is None else scale))
    with np.errstate(all="ignore"):
        raw = np.matmul(q * s, np.swapaxes(kk * s, -1, -2)).astype(dt, copy=False)
        capped = (np.tanh(raw / dt.type(softcap)) * dt.type(softcap)).astype(dt) if softcap > 0 else raw
        scores = capped + bias
        pdt = dtypes.from_onnx(softmax_precision) if softmax_precision is not None else dt
        probs = _softmax(scores.astype(pdt))
        dead_rows = np.isneginf(np.max(bias, axis=-1, keepdims=True))
        probs = np.where(dead_rows, pdt.type(0), probs).astype(dt)
        y = np.matmul(probs, vv).astype(dt, copy=False)
    if three_d:
        y = y.transpose(0, 2, 1, 3).reshape(y.shape[0], sq, -1)
    qk_out = {0: raw, 1: capped, 2: scores, 3: probs}.get(qk_matmul_output_mode)
    if qk_out is None:
        raise ValueError(f"qk_matmul_output_mode={qk_matmul_output_mode} is not one of 0..3")
    qk_out = np.broadcast_to(qk_out, raw.shape).astype(dt)
    return y, present_k, present_v, qk_out
