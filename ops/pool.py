"""2x2 max pooling with stride 2; odd sizes are floored (the last row/column is dropped, as in Keras).

Forward records, for each output, which of its four inputs won (0..3 in row-major order inside the
window; the FIRST maximum wins, so ties send the gradient to exactly one input). Backward routes each
output gradient to that winner only.
"""
from .backend import array_module


def _windows(x):
    """View the floored input as (N, C, H/2, W/2, 4): the four values of every pooling window."""
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    x = x[:, :, :2 * h2, :2 * w2]
    return x.reshape(n, c, h2, 2, w2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h2, w2, 4)


def maxpool2x2_forward(x):
    """Return (y, winner): y the window maxima, winner the uint8 index of the first maximum."""
    xp = array_module(x)
    win = _windows(x)
    winner = xp.argmax(win, axis=-1).astype(xp.uint8)
    y = xp.take_along_axis(win, winner[..., None].astype(xp.intp), axis=-1)[..., 0]
    return y, winner


def maxpool2x2_backward(gy, winner, x_shape):
    """Scatter each output gradient onto its window's winning input; all other inputs get 0."""
    xp = array_module(gy)
    n, c, h, w = x_shape
    h2, w2 = h // 2, w // 2
    onehot = winner[..., None] == xp.arange(4, dtype=xp.uint8)
    gwin = onehot * gy[..., None]
    gx = xp.zeros(x_shape, dtype=gy.dtype)
    gx[:, :, :2 * h2, :2 * w2] = (
        gwin.reshape(n, c, h2, w2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, 2 * h2, 2 * w2))
    return gx
