"""A define-by-run Tensor and the Function base class, with an iterative backward pass.

Each call of a Function on Tensors runs `forward` on raw arrays and, when gradients are being recorded,
links the output to the Function ("creator") and the Function to its inputs. The graph is a DAG whose
nodes carry a generation: one more than the deepest input. `Tensor.backward` visits Functions in
decreasing generation with a heap, so every Function runs once, after all of its outputs' consumers
have contributed; a value used twice receives the sum of its gradients. No recursion, so depth is
unbounded.
"""
import heapq
import itertools
from contextlib import contextmanager

_recording = True


@contextmanager
def no_grad():
    """Evaluation mode: Functions build no graph and keep no activations for backward."""
    global _recording
    previous, _recording = _recording, False
    try:
        yield
    finally:
        _recording = previous


def is_recording():
    """True when Function calls record the graph for backward."""
    return _recording


class Tensor:
    """An array plus what autograd needs: its gradient and the Function that made it.

    Leaf tensors that require grad (parameters) may own a preallocated `grad` buffer, such as a view
    into the flat gradient vector; backward then adds into that buffer in place.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "generation")

    def __init__(self, data, requires_grad=False, grad=None):
        self.data = data
        self.requires_grad = requires_grad
        self.grad = grad
        self.creator = None
        self.generation = 0

    @property
    def shape(self):
        """Shape of the underlying array."""
        return self.data.shape

    def backward(self, grad_output=None):
        """Accumulate d(self)/d(leaf) into every leaf that requires grad.

        `grad_output` defaults to 1 for a scalar. Intermediate gradients are released as soon as the
        Function that consumes them has run.
        """
        if self.creator is None:
            return
        if grad_output is None:
            grad_output = self.data.dtype.type(1) + 0 * self.data
        grads = {id(self): grad_output}
        tie_breaker = itertools.count()
        heap = [(-self.creator.generation, next(tie_breaker), self.creator)]
        queued = {id(self.creator)}
        while heap:
            _, _, fn = heapq.heappop(heap)
            output_grads = [grads.pop(id(out), None) for out in fn.outputs]
            input_grads = fn.backward(*output_grads)
            for tensor, g in zip(fn.inputs, input_grads):
                if g is None or not tensor.requires_grad:
                    continue
                _accumulate(tensor, g, grads)
                creator = tensor.creator
                if creator is not None and id(creator) not in queued:
                    queued.add(id(creator))
                    heapq.heappush(heap, (-creator.generation, next(tie_breaker), creator))
            fn.release()


def _accumulate(tensor, g, grads):
    """Add gradient g to a leaf's own buffer, or to the pending gradient of an intermediate tensor."""
    if g.shape != tensor.data.shape:
        raise RuntimeError(f"gradient shape {g.shape} does not match tensor shape {tensor.data.shape}")
    if tensor.creator is None:
        if tensor.grad is None:
            tensor.grad = g.copy()
        else:
            tensor.grad += g
    elif id(tensor) in grads:
        grads[id(tensor)] = grads[id(tensor)] + g
    else:
        grads[id(tensor)] = g


class Function:
    """One differentiable op. Subclasses implement forward(*arrays) and backward(*grad_outputs).

    `forward` returns one array or a tuple; it may stash on `self` what backward needs (and only
    that). `backward` returns one gradient per input (None where not needed); `self.needs_grad[i]`
    tells whether input i wants a gradient, so work for frozen inputs can be skipped.
    """

    inputs = ()
    outputs = ()
    generation = 0

    def __call__(self, *inputs):
        arrays = [t.data for t in inputs]
        result = self.forward(*arrays)
        single = not isinstance(result, tuple)
        results = (result,) if single else result
        requires_grad = _recording and any(t.requires_grad for t in inputs)
        outputs = tuple(Tensor(r, requires_grad=requires_grad) for r in results)
        if requires_grad:
            self.inputs = inputs
            self.needs_grad = tuple(t.requires_grad for t in inputs)
            self.generation = max(t.generation for t in inputs) + 1
            for out in outputs:
                out.creator = self
                out.generation = self.generation
            self.outputs = outputs
        else:
            self.release()
        return outputs[0] if single else outputs

    def release(self):
        """Drop references kept for backward, so activations are freed as soon as possible."""
        self.__dict__.clear()
        self.inputs = ()
        self.outputs = ()
