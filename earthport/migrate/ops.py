"""The op map: each ATen op a ``torch.export`` graph can hold -> its MindSpore counterpart, status and probe.

Statuses: ``ok`` (same semantics), ``adapter`` (earthport supplies it: the FFTs in
``earthport.models.layers.mindspore_fft``, einsum rewritten to ``ops.BatchMatMul``, roll as slice + concat),
``differs`` (a counterpart with a known semantic or default difference, named in the note), ``missing`` (no
counterpart known). Ops not in the map are
``unknown``. Keys are ATen packets (``aten.linear``: any overload) or full names (``aten.linear.default``:
that overload only; an exact name wins). ``probe`` names a snippet in ``probe_snippets`` that shows whether a
backend runs the counterpart; ``fallback`` names the snippet of the adapter's own path. Checked against
MindSpore 2.10 (``inspect.signature`` and CPU probes); the module-level default lint is ``defaults.py``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass

OK, ADAPTER, DIFFERS, MISSING, UNKNOWN = "ok", "adapter", "differs", "missing", "unknown"
FFT_MODULE = "earthport.models.layers.mindspore_fft"


@dataclass(frozen=True)
class OpMapping:
    """One row of the op map: where the op goes in MindSpore and how sure that is."""

    mindspore: str
    status: str
    note: str = ""
    probe: str | None = None
    fallback: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _fft(native: str, adapter: str) -> OpMapping:
    note = (
        f"{FFT_MODULE}.{adapter} takes and returns (real, imag) pairs; on the CPU the matmul DFT for axes up to "
        "1440 points (faster there), else native ops where probe_native_fft passes (Ascend), else the matmul DFT"
    )
    return OpMapping(f"{native} / {FFT_MODULE}.{adapter}", ADAPTER, note, "fft")


_BOOKKEEPING = OpMapping("none (export bookkeeping, nothing to port)", OK)
_NO_COPY = OpMapping("none (MindSpore tensors are values; Tensor.copy() if a copy is wanted)", OK)
_CONV_NOTE = (
    "nn.Conv* default pad_mode='same' and has_bias=False: pass pad_mode='pad' with padding per side "
    "(top, bottom, left, right) or 'valid', and has_bias"
)
_POOL_NOTE = "nn.MaxPool2d/AvgPool2d stride defaults to 1 (torch: kernel_size): pass stride"
_BN_NOTE = "MindSpore momentum = 1 - torch momentum (0.9 for 0.1); gamma/beta/moving_mean/moving_variance names"
_LN_NOTE = "nn.LayerNorm epsilon defaults to 1e-7 (torch 1e-5): pass epsilon; weight/bias are gamma/beta"
_VAR_NOTE = "ops.var/ops.std take ddof, default 0; torch's correction defaults to 1: pass ddof"

_ROWS: list[tuple[tuple[str, ...], OpMapping]] = [
    (("aten._assert_tensor_metadata", "aten._assert_scalar", "aten._assert_async", "aten.sym_constrain_range_for_size",
      "aten.sym_size", "aten.sym_numel", "aten.sym_stride"), _BOOKKEEPING),
    (("operator.getitem",), OpMapping("tuple indexing", OK)),
    (("higher_order.wrap_with_autocast",), OpMapping("none: a region with autocast off; keep it float32", OK)),
    (("higher_order.wrap_with_set_grad_enabled",), OpMapping("ops.stop_gradient around the region", OK)),
    (("aten.clone", "aten.contiguous", "aten.detach", "aten.alias", "aten.lift_fresh_copy"), _NO_COPY),
    # shapes and structure
    (("aten.view", "aten.reshape", "aten._unsafe_view", "aten.flatten", "aten.unflatten", "aten.view_copy"),
     OpMapping("ops.reshape", OK, probe="ops.reshape")),
    (("aten.permute",), OpMapping("ops.transpose", OK, "ops.transpose takes a full permutation (torch.permute)",
                                  "ops.transpose")),
    (("aten.transpose", "aten.swapaxes", "aten.t", "aten.numpy_T"), OpMapping(
        "ops.swapaxes", OK, "torch.transpose(x, a, b) is ops.swapaxes, not ops.transpose", "ops.swapaxes")),
    (("aten.unsqueeze",), OpMapping("ops.expand_dims", OK, probe="ops.expand_dims")),
    (("aten.squeeze",), OpMapping("ops.squeeze", OK, probe="ops.expand_dims")),
    (("aten.expand", "aten.expand_as", "aten.broadcast_to"), OpMapping("ops.broadcast_to", OK,
                                                                       probe="ops.broadcast_to")),
    (("aten.repeat",), OpMapping("ops.tile", OK, "torch Tensor.repeat is ops.tile", "structure ops")),
    (("aten.repeat_interleave",), OpMapping("ops.repeat_interleave", OK, probe="structure ops")),
    (("aten.flip",), OpMapping("ops.flip", OK, probe="structure ops")),
    (("aten.tril", "aten.triu"), OpMapping("ops.tril / ops.triu", OK, probe="structure ops")),
    (("aten.cat", "aten.concat"), OpMapping("ops.cat", OK, probe="ops.cat")),
    (("aten.stack",), OpMapping("ops.stack", OK, probe="ops.stack")),
    (("aten.split", "aten.split_with_sizes", "aten.chunk", "aten.unbind", "aten.tensor_split"),
     OpMapping("ops.split / ops.chunk / ops.unbind", OK, probe="ops.split")),
    (("aten.slice", "aten.select", "aten.narrow"), OpMapping("Tensor slicing (x[a:b], x[i]) / ops.narrow", OK,
                                                             probe="tensor indexing")),
    (("aten.copy_", "aten.slice_scatter"), OpMapping(
        "ops.concat of the parts (or Tensor.__setitem__)", DIFFERS, "in-place writes into a slice (out[:, :k] = y): "
        "build the result functionally, e.g. concatenate y with zeros (earthport's AFNO ports do; ops.pad's gradient "
        "is broken in graphs)", "ops.cat")),
    (("aten.index", "aten.index_select"), OpMapping(
        "ops.gather / Tensor indexing / ops.index_select", OK, "x[ids] (one index tensor on axis 0) is "
        "ops.gather(x, ids, 0), as earthport's MindSpore GraphCast gathers node latents per edge", "ops.gather")),
    (("aten.gather",), OpMapping("ops.gather_elements", OK, "torch.gather is ops.gather_elements; ops.gather is "
                                 "torch.index_select", "ops.gather_elements")),
    (("aten.embedding",), OpMapping("nn.Embedding / ops.embedding", OK, "parameter named embedding_table",
                                    "nn.Embedding")),
    # graph message passing
    (("aten.scatter_add", "aten.scatter_add_"), OpMapping(
        "ops.tensor_scatter_elements(reduction='add')", OK,
        "mint.scatter_add fails on CPU in 2.10 (ScatterAddExt unregistered); use the ops form",
        "ops.tensor_scatter_elements")),
    (("aten.index_add", "aten.index_add_"), OpMapping(
        "ops.UnsortedSegmentSum / ops.TensorScatterAdd / ops.index_add", OK,
        "x.index_add_(0, ids, y) into zeros is ops.UnsortedSegmentSum()(y, ids, len(x)), as earthport's MindSpore "
        "GraphCast sums messages per receiver (faster there than TensorScatterAdd into zeros); "
        "ops.index_add(x, ids, y, axis) adds into any x", "ops.UnsortedSegmentSum")),
    (("aten.scatter", "aten.scatter_"), OpMapping("ops.scatter", OK, probe="ops.scatter")),
    (("aten.scatter_reduce", "aten.scatter_reduce_"), OpMapping(
        "ops.tensor_scatter_elements / ops.unsorted_segment_max", DIFFERS,
        "tensor_scatter_elements reduces only 'none'/'add' and has no include_self; use unsorted_segment_max/min/prod",
        "ops.tensor_scatter_elements")),
    (("aten.segment_reduce",), OpMapping("ops.unsorted_segment_sum / _max / _min", DIFFERS,
                                         "takes a segment id per row, not lengths", "ops.unsorted_segment_sum")),
    (("aten.index_reduce", "aten.index_reduce_"), OpMapping(
        "none (no ops.index_reduce in 2.10)", MISSING, "compose from ops.unsorted_segment_max/min/prod")),
    (("aten.index_put", "aten.index_put_"), OpMapping("Tensor item assignment / ops.tensor_scatter_update", OK)),
    # elementwise
    (("aten.add", "aten.add_"), OpMapping("ops.add", OK, probe="ops.add")),
    (("aten.sub", "aten.rsub"), OpMapping("ops.sub", OK, probe="ops.add")),
    (("aten.mul", "aten.mul_"), OpMapping("ops.mul", OK, probe="ops.add")),
    (("aten.div", "aten.div_"), OpMapping("ops.div", OK, probe="ops.add")),
    *(((f"aten.{name}",), OpMapping(f"ops.{name}", OK, probe="elementwise math")) for name in (
        "neg", "abs", "sign", "exp", "log", "log1p", "expm1", "sqrt", "rsqrt", "reciprocal", "pow", "square", "sin",
        "cos", "erf", "atan2", "floor", "ceil", "round", "trunc", "remainder", "fmod", "maximum", "minimum",
        "clamp", "clip", "lerp", "nan_to_num")),
    (("aten.sgn",), OpMapping("ops.sign", OK, probe="elementwise math")),
    *(((f"aten.{name}",), OpMapping(f"ops.{name}", OK, probe="comparison and selection")) for name in (
        "gt", "lt", "ge", "le", "eq", "ne", "logical_and", "logical_or", "logical_not", "isnan", "isinf",
        "isfinite", "where", "masked_fill")),
    # activations
    *(((f"aten.{name}", f"aten.{name}_"), OpMapping(f"ops.{name}", OK, probe="activations")) for name in (
        "relu", "sigmoid", "tanh", "silu", "softplus", "elu", "hardtanh", "hardswish")),
    (("aten.leaky_relu", "aten.leaky_relu_"), OpMapping("ops.leaky_relu", DIFFERS,
                                                        "MindSpore alpha defaults to 0.2 (torch 0.01): pass it",
                                                        "activations")),
    (("aten.gelu",), OpMapping("ops.gelu / nn.GELU(approximate=False)", DIFFERS,
                               "nn.GELU defaults to the tanh form, torch to erf: nn.GELU(approximate=False)",
                               "ops.gelu")),
    (("aten.softshrink",), OpMapping("ops.softshrink", OK, probe="ops.softshrink")),
    (("aten.softmax", "aten._softmax"), OpMapping("ops.softmax", OK, probe="ops.softmax")),
    (("aten.log_softmax", "aten._log_softmax"), OpMapping("ops.log_softmax", OK, probe="ops.softmax")),
    # linear algebra
    (("aten.linear",), OpMapping("nn.Dense / ops.dense", OK, "weight [out, in] as torch", "nn.Dense")),
    (("aten.matmul", "aten.mm", "aten.bmm", "aten.addmm"), OpMapping("ops.matmul / ops.bmm / ops.addmm", OK,
                                                                     probe="ops.matmul")),
    (("aten.einsum",), OpMapping(
        "ops.einsum -> earthport rewrite to ops.BatchMatMul", ADAPTER,
        "ops.einsum has no CPU kernel in 2.10; '...bi,bio->...bo' becomes a block-major BatchMatMul (which does not "
        "broadcast batch axes on CPU/GPU)", "ops.einsum", "ops.BatchMatMul")),
    (("aten.cdist", "aten._cdist_forward"), OpMapping("ops.cdist", OK, probe="ops.cdist")),
    (("aten.kthvalue",), OpMapping("none (no ops.kthvalue in 2.10)", MISSING, "compose with ops.sort or ops.topk")),
    (("aten.linalg_eigh", "aten._linalg_eigh"), OpMapping("none (no ops.eigh in 2.10)", MISSING,
                                                          "ops.eig is the general, complex-valued solver")),
    (("aten.isin",), OpMapping("none (no ops.isin in 2.10)", MISSING, "compose: (x[..., None] == v).any(-1)")),
    (("aten.scaled_dot_product_attention",), OpMapping(
        "ops.flash_attention_score (Ascend) / ops.matmul + ops.softmax", DIFFERS,
        "no fused kernel on CPU/GPU: compose it")),
    (("aten.searchsorted",), OpMapping("ops.searchsorted", OK, "right/side defaults as torch in 2.10",
                                       "ops.searchsorted")),
    # normalisation, convolution, pooling, dropout
    (("aten.layer_norm", "aten.native_layer_norm"), OpMapping("nn.LayerNorm / ops.layer_norm", DIFFERS, _LN_NOTE,
                                                              "nn.LayerNorm")),
    (("aten.group_norm", "aten.native_group_norm"), OpMapping("nn.GroupNorm", DIFFERS, "weight/bias are gamma/beta",
                                                              "nn.GroupNorm")),
    (("aten.batch_norm", "aten.native_batch_norm", "aten._native_batch_norm_legit",
      "aten._native_batch_norm_legit_no_training", "aten._native_batch_norm_legit_functional"),
     OpMapping("nn.BatchNorm2d", DIFFERS, _BN_NOTE, "nn.BatchNorm2d")),
    (("aten.instance_norm",), OpMapping("nn.InstanceNorm2d", DIFFERS, "weight/bias are gamma/beta")),
    (("aten.conv2d", "aten.convolution", "aten._convolution"), OpMapping(
        "nn.Conv2d / ops.conv2d", DIFFERS, _CONV_NOTE + "; aten.convolution also stands for 1-D/3-D/transposed",
        "nn.Conv2d")),
    (("aten.conv1d",), OpMapping("nn.Conv1d", DIFFERS, _CONV_NOTE + "; weight is [out, in, 1, k]", "nn.Conv1d")),
    (("aten.conv3d",), OpMapping("nn.Conv3d", DIFFERS, _CONV_NOTE)),
    (("aten.conv_transpose2d",), OpMapping("nn.Conv2dTranspose", DIFFERS, _CONV_NOTE, "nn.Conv2dTranspose")),
    (("aten.max_pool2d", "aten.max_pool2d_with_indices"), OpMapping("nn.MaxPool2d", DIFFERS, _POOL_NOTE, "pooling")),
    (("aten.avg_pool2d",), OpMapping("nn.AvgPool2d", DIFFERS, _POOL_NOTE, "pooling")),
    (("aten.adaptive_avg_pool2d", "aten._adaptive_avg_pool2d"), OpMapping("ops.adaptive_avg_pool2d", OK,
                                                                          probe="pooling")),
    (("aten.dropout", "aten.native_dropout", "aten.feature_dropout"), OpMapping(
        "nn.Dropout(p=...) / ops.dropout", DIFFERS, "legacy nn.Dropout(keep_prob) is 1 - p: pass p=", "nn.Dropout")),
    # padding, resampling, shifting
    (("aten.pad", "aten.constant_pad_nd"), OpMapping("ops.pad", OK, "same last-axis-first pad order", "ops.pad")),
    (("aten.reflection_pad1d", "aten.reflection_pad2d", "aten.replication_pad1d", "aten.replication_pad2d",
      "aten._pad_circular"), OpMapping("ops.pad(mode=...)", OK, probe="ops.pad modes")),
    (("aten.upsample_bilinear2d", "aten.upsample_nearest2d", "aten.upsample_bicubic2d"), OpMapping(
        "ops.interpolate", DIFFERS, "pass align_corners explicitly; bilinear 4-D rejects scale_factor: pass size",
        "ops.interpolate")),
    (("aten.grid_sampler", "aten.grid_sampler_2d"), OpMapping(
        "ops.grid_sample", DIFFERS, "align_corners defaults differ across ops/mint versions: pass it explicitly",
        "ops.grid_sample")),
    (("aten.roll",), OpMapping("ops.roll -> earthport rewrite: slice + ops.cat", ADAPTER,
                               "ops.roll and mint.roll have no CPU kernel in 2.10 (Roll unregistered)", "ops.roll",
                               "ops.cat")),
    # spectral and complex
    (("aten.fft_rfft2", "aten.fft_rfftn"), _fft("ops.rfft2", "RFFT2")),
    (("aten.fft_irfft2", "aten.fft_irfftn"), _fft("ops.irfft2", "IRFFT2")),
    (("aten.fft_rfft",), _fft("ops.rfft", "RFFT")),
    (("aten.fft_irfft",), _fft("ops.irfft", "IRFFT")),
    (("aten._fft_r2c",), _fft("ops.rfft / ops.rfft2", "RFFT / RFFT2 (1-D or 2-D by dim)")),
    (("aten._fft_c2r",), _fft("ops.irfft / ops.irfft2", "IRFFT / IRFFT2 (1-D or 2-D by dim)")),
    (("aten.fft_fft", "aten.fft_ifft", "aten.fft_fft2", "aten.fft_ifft2", "aten.fft_fftn", "aten.fft_ifftn",
      "aten._fft_c2c"), OpMapping("ops.fft / ops.ifft / ops.fft2 / ops.fftn", OK,
                                  "native only (no earthport adapter); documented for Ascend/CPU", "ops.fft")),
    (("aten.view_as_real", "aten.real", "aten.imag"), OpMapping("ops.view_as_real / ops.real / ops.imag", OK,
                                                                probe="ops.view_as_real")),
    (("aten.view_as_complex", "aten.complex"), OpMapping(
        "ops.Complex()(re, im)", DIFFERS, "no ops.view_as_complex: build from x[..., 0] and x[..., 1]",
        "ops.view_as_real")),
    # dtype, reductions, sorting, creation
    (("aten.to", "aten._to_copy", "aten.type_as"), OpMapping("ops.cast / Tensor.astype", OK, probe="ops.cast")),
    *(((f"aten.{name}",), OpMapping(f"ops.{name}", OK, probe="reductions")) for name in (
        "sum", "mean", "amax", "amin", "max", "min", "prod", "any", "all", "cumsum", "logsumexp", "argmax", "argmin")),
    (("aten.linalg_vector_norm", "aten.norm"), OpMapping("ops.norm", OK, probe="reductions")),
    (("aten.var", "aten.std", "aten.var_mean", "aten.std_mean"), OpMapping("ops.var / ops.std", DIFFERS, _VAR_NOTE,
                                                                          "reductions")),
    (("aten.sort", "aten.topk", "aten.argsort"), OpMapping("ops.sort / ops.topk / ops.argsort", OK, probe="ops.sort")),
    (("aten.zeros", "aten.ones", "aten.full", "aten.zeros_like", "aten.ones_like", "aten.full_like", "aten.new_zeros",
      "aten.new_ones", "aten.new_full", "aten.arange", "aten.linspace", "aten.scalar_tensor", "aten.eye"),
     OpMapping("ops.zeros / ops.ones / ops.full / ops.arange", OK, probe="creation")),
    (("aten.empty", "aten.empty_like", "aten.new_empty", "aten.empty_strided"), OpMapping(
        "ops.zeros", OK, "no uninitialised tensors: zeros", "creation")),
]  # fmt: skip

OP_MAP: dict[str, OpMapping] = {key: mapping for keys, mapping in _ROWS for key in keys}


def lookup(op: str) -> OpMapping | None:
    """The row for ``op`` (``aten.linear.default``): its full name first, then its packet (``aten.linear``)."""
    if op in OP_MAP:
        return OP_MAP[op]
    packet = op.rsplit(".", 1)[0] if op.count(".") >= 2 else op
    return OP_MAP.get(packet)


def fft_module_present() -> bool:
    """Whether ``earthport.models.layers.mindspore_fft`` can be found (not imported: it imports MindSpore)."""
    return importlib.util.find_spec(FFT_MODULE) is not None
