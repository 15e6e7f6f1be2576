"""A 3x3 convolution layer, N=8, 64->64 channels, 56x56, padding 1 (a
ResNet-18 layer), both frameworks with the same weights: inference under
no_grad read with numpy(), and forward+backward of a loss (its gradients
computed, the loss read with item())."""
import numpy as np

from _harness import compare, jt, torch, torch_compiled

rng = np.random.RandomState(0)
x_np = rng.randn(8, 64, 56, 56).astype(np.float32)
w_np = (rng.randn(64, 64, 3, 3) * 0.05).astype(np.float32)
layer = jt.nn.Conv2d(64, 64, 3, padding=1, bias=False)
layer.load_state_dict({"weight": w_np})
x = jt.array(x_np)


def kiln_fwd():
    with jt.no_grad():
        return layer(x).numpy()


def kiln_train():
    y = layer(x)
    loss = (y * y).mean()
    jt.sync(jt.grad(loss, [x, layer.weight]))
    return loss.item()


torch_fwd = torch_train = compiled_fwd = compiled_train = None
if torch is not None:
    tlayer = torch.nn.Conv2d(64, 64, 3, padding=1, bias=False)
    tlayer.load_state_dict({"weight": torch.from_numpy(w_np)})
    xt = torch.from_numpy(x_np).requires_grad_()
    with torch.no_grad():
        want = tlayer(xt).numpy()
    assert np.allclose(kiln_fwd(), want, rtol=1e-3, atol=1e-3)

    def torch_fwd():
        with torch.no_grad():
            return tlayer(xt).numpy()

    def train_with(f):
        def step():
            y = f(xt)
            loss = (y * y).mean()
            loss.backward()
            return loss.item()
        return step

    torch_train = train_with(tlayer)
    graph = torch_compiled(tlayer)
    if graph is not None:
        def compiled_fwd():
            with torch.no_grad():
                return graph(xt).numpy()
        compiled_train = train_with(graph)
compare("conv 3x3 8x64x56x56 forward", kiln_fwd, torch_fwd, compiled_fwd, repeat=10)
compare("conv 3x3 8x64x56x56 fwd+bwd", kiln_train, torch_train, compiled_train, repeat=10)
