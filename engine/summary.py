"""A Keras-style model summary: every layer with its output shape, parameter count and where its
parameters start in the flat vector theta."""
from .model import ModelConfig


def summary_rows(config=None):
    """[{layer, output_shape, parameters, offset}] in forward order; offset is None for layers
    without parameters. Shapes exclude the batch axis (channels first, as the engine stores them).
    No config: the study's net at its defaults."""
    config = config or ModelConfig()
    config.validate()
    offsets, sizes, offset = {}, {}, 0
    for _name, layer, _kind, _role, shape in config.parameter_entries():
        size = 1
        for extent in shape:
            size *= extent
        offsets.setdefault(layer, offset)
        sizes[layer] = sizes.get(layer, 0) + size
        offset += size

    def row(layer, shape, params_of=None):
        return {"layer": layer, "output_shape": tuple(shape),
                "parameters": sizes.get(params_of, 0), "offset": offsets.get(params_of)}
    rows, side = [], config.image_size
    for i, filters in enumerate(config.filters, start=1):
        # 'same' convolution keeps the side; 2x2 max-pooling halves it (flooring odd sides)
        rows.append(row(f"conv{i} {config.kernel_size}x{config.kernel_size} + ReLU",
                        (filters, side, side), f"conv{i}"))
        side //= 2
        rows.append(row(f"maxpool{i} 2x2", (filters, side, side)))
    rows.append(row("flatten", (config.filters[-1] * side * side,)))
    widths = tuple(config.dense) + (1,)
    for i, width in enumerate(widths, start=1):
        rows.append(row(f"dense{i}" + (" + ReLU" if i < len(widths) else " (logit)"), (width,),
                        f"dense{i}"))
    return rows


def format_summary(rows, title="model"):
    """The rows as a fixed-width text table with the total parameter count."""
    lines = [title, f"{'layer':<24}{'output shape':<18}{'parameters':>12}{'offset in theta':>18}"]
    lines.append("-" * len(lines[1]))
    for r in rows:
        shape = str(r["output_shape"])
        offset = "-" if r["offset"] is None else f"{r['offset']:,}"
        lines.append(f"{r['layer']:<24}{shape:<18}{r['parameters']:>12,}{offset:>18}")
    lines.append("-" * len(lines[1]))
    lines.append(f"total parameters: {sum(r['parameters'] for r in rows):,} (float32: "
                 f"{4 * sum(r['parameters'] for r in rows) / 1e6:.2f} MB)")
    return "\n".join(lines)
