#!/usr/bin/env python3
"""PyTorch on the GPU beside bench_gpu, for benchmarks/gpu/run.sh: the same model (from our
model YAML), the same training recipe (AdamW, the one-cycle schedule of kernels/src/trainer.cpp,
decoupled weight decay on weights only, label smoothing 0.05, batch 128, a random affine warp
of every image on the device) and the same MNIST IDX files, timed the same way. fp32 throughout
(TF32 off), as ours. Prints one JSON line per run with bench_gpu's keys.

`spec MODEL.yaml` prints the model as digitflow's ModelSpec JSON (no torch needed), so that
bench_gpu runs exactly the model this script builds."""
import argparse
import json
import math
import os
import struct
import sys
import time

import yaml

LR, WARMUP, WEIGHT_DECAY, SMOOTHING = 0.003, 0.2, 5e-4, 0.05
MEAN, STD = 0.1307, 0.3081
SHIFT, ROTATION, SCALE, SHEAR = 2.5, 10.0, 0.10, 8.0


def layer_entries(spec):
    for entry in spec["layers"]:
        name, args = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        yield name, args or {}


def model_spec_json(path):
    spec = yaml.safe_load(open(path))
    inp = spec.get("input", {})
    layers = []
    for name, a in layer_entries(spec):
        if name == "conv2d":
            layers.append({"type": name, "out": a["out"], "kernel": a.get("kernel", 3), "stride": a.get("stride", 1),
                           "padding": a.get("padding", 0), "bias": a.get("bias", True)})
        elif name == "dense":
            layers.append({"type": name, "out": a["out"], "bias": a.get("bias", True)})
        elif name == "maxpool":
            k = a.get("kernel", 2)
            layers.append({"type": name, "kernel": k, "stride": a.get("stride", k)})
        elif name == "dropout":
            layers.append({"type": name, "rate": a.get("rate", 0.5)})
        elif name == "batchnorm2d":
            layers.append({"type": name, "momentum": a.get("momentum", 0.1), "eps": a.get("eps", 1e-5)})
        elif name in ("relu", "flatten"):
            layers.append({"type": name})
        else:
            sys.exit(f"{path}: unknown layer {name}")
    return {"name": spec.get("name", os.path.basename(path)),
            "input": {"channels": inp.get("channels", 1), "height": inp.get("height", 28), "width": inp.get("width", 28)},
            "classes": spec.get("classes", 10), "layers": layers}


def build(path, torch):
    spec = model_spec_json(path)
    c, h, w = spec["input"]["channels"], spec["input"]["height"], spec["input"]["width"]
    layers = []
    for l in spec["layers"]:
        with torch.no_grad():  # in eval mode, so that batchnorm's running statistics stay as built
            shape = torch.nn.Sequential(*layers).eval()(torch.zeros(1, c, h, w)).shape if layers else (1, c, h, w)
        t = l["type"]
        if t == "conv2d":
            layers.append(torch.nn.Conv2d(shape[1], l["out"], l["kernel"], l["stride"], l["padding"], bias=l["bias"]))
        elif t == "batchnorm2d":
            layers.append(torch.nn.BatchNorm2d(shape[1], eps=l["eps"], momentum=l["momentum"]))
        elif t == "relu":
            layers.append(torch.nn.ReLU())
        elif t == "maxpool":
            layers.append(torch.nn.MaxPool2d(l["kernel"], l["stride"]))
        elif t == "dropout":
            layers.append(torch.nn.Dropout(l["rate"]))
        elif t == "flatten":
            layers.append(torch.nn.Flatten())
        elif t == "dense":
            layers.append(torch.nn.Linear(shape[1], l["out"], bias=l["bias"]))
    for m in layers:  # He-normal weights, zero biases, as digitflow initialises
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    return torch.nn.Sequential(*layers), spec["name"]


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return data[4 + 4 * dims:], shape


def load_mnist(torch, data_dir, split, device):
    prefix = "train" if split == "train" else "t10k"
    pixels, shape = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels, _ = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"))
    x = torch.frombuffer(bytearray(pixels), dtype=torch.uint8).reshape(shape[0], 1, shape[1], shape[2])
    y = torch.frombuffer(bytearray(labels), dtype=torch.uint8).long()
    return x.to(device), y.to(device)


def learning_rate(step, total):  # kernels/src/trainer.cpp, schedule "onecycle"
    if total <= 1:
        return LR
    pct = step / (total - 1)
    start, end = LR / 25.0, LR / 1e4
    if pct < WARMUP:
        return start + (LR - start) * pct / WARMUP
    t = (pct - WARMUP) / (1.0 - WARMUP)
    return end + (LR - end) * 0.5 * (1.0 + math.cos(math.pi * t))


def augment(torch, images):
    """A random affine warp per image (rotation, shear, scale, shift about the centre,
    bilinear, zeros outside), as random_affine does, then the input normalisation."""
    import torch.nn.functional as F
    n, _, h, w = images.shape
    dev = images.device
    u = lambda r: (torch.rand(n, device=dev) * 2 - 1) * r
    angle, shear = u(ROTATION) * math.pi / 180, u(SHEAR) * math.pi / 180
    scale, tx, ty = 1 + u(SCALE), u(SHIFT), u(SHIFT)
    c, s, sh = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    m = torch.stack([torch.stack([c * scale, (c * sh - s) * scale], 1),
                     torch.stack([s * scale, (s * sh + c) * scale], 1)], 1)
    inv = torch.linalg.inv(m)
    half = (w - 1) / 2.0  # square images: pixel and normalised coordinates differ by this factor
    t = torch.stack([tx, ty], 1) / half
    theta = torch.cat([inv, -(inv @ t.unsqueeze(2))], 2)
    grid = F.affine_grid(theta, images.shape, align_corners=True)
    warped = F.grid_sample(images.float() / 255.0, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (warped - MEAN) / STD


def make_optimizer(torch, net):
    decay = [p for n, p in net.named_parameters() if p.dim() > 1]
    rest = [p for n, p in net.named_parameters() if p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
                             lr=LR, betas=(0.9, 0.999), eps=1e-8)


def run_epochs(torch, net, x, y, epochs, batch, on_epoch=None):
    opt = make_optimizer(torch, net)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    batches = x.shape[0] // batch
    total, step, times = batches * epochs, 0, []
    for epoch in range(1, epochs + 1):
        net.train()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        order = torch.randperm(x.shape[0], device=x.device)
        for b in range(batches):
            idx = order[b * batch:(b + 1) * batch]
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, total)
            loss = loss_fn(net(augment(torch, x[idx])), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        if on_epoch:
            on_epoch(epoch, times[-1])
    return times, batches * batch


def accuracy(torch, net, x, y):
    net.eval()
    with torch.no_grad():
        correct = 0
        for s in range(0, x.shape[0], 10000):
            logits = net((x[s:s + 10000].float() / 255.0 - MEAN) / STD)
            correct += (logits.argmax(1) == y[s:s + 10000]).sum().item()
    return correct / x.shape[0]


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("what", choices=["spec", "train", "full", "infer"])
    p.add_argument("model", help="model YAML (config/models/*.yaml)")
    p.add_argument("--data", default="data/mnist")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--target", type=float, default=0.995)
    p.add_argument("--batches", default="1,256,8192", help="infer: batch sizes")
    a = p.parse_args()
    if a.what == "spec":
        print(json.dumps(model_spec_json(a.model)))
        return
    import torch
    if not torch.cuda.is_available():
        sys.exit("gpu_peer_torch: PyTorch sees no CUDA device")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1)
    dev = torch.device("cuda")
    net, name = build(a.model, torch)
    net = net.to(dev)
    out = {"peer": "pytorch", "backend": f"torch {torch.__version__}", "model": name, "what": a.what}
    if a.what == "train":
        x, y = load_mnist(torch, a.data, "train", dev)
        times, images = run_epochs(torch, net, x, y, 2, a.batch)
        out.update(images_per_s=images / times[-1], epoch_s=times[-1], first_epoch_s=times[0], batch=a.batch)
    elif a.what == "full":
        x, y = load_mnist(torch, a.data, "train", dev)
        tx, ty = load_mnist(torch, a.data, "test", dev)
        state = {"train_s": 0.0, "reached": None, "epoch": 0, "best": 0.0, "epochs": []}

        def on_epoch(epoch, seconds):
            state["train_s"] += seconds
            acc = accuracy(torch, net, tx, ty)
            state["best"] = max(state["best"], acc)
            if state["reached"] is None and acc >= a.target:
                state["reached"], state["epoch"] = state["train_s"], epoch
            state["epochs"].append({"epoch": epoch, "seconds": seconds, "test_accuracy": acc})

        t0 = time.perf_counter()
        run_epochs(torch, net, x, y, a.epochs, a.batch, on_epoch)
        out.update(target=a.target, time_to_target_s=state["reached"], epoch_reached=state["epoch"],
                   best_test_accuracy=state["best"], train_s=state["train_s"], wall_s=time.perf_counter() - t0,
                   epochs=state["epochs"])
    else:
        tx, _ = load_mnist(torch, a.data, "test", "cpu")
        net.eval()
        for batch in [int(b) for b in a.batches.split(",")]:
            count = 2000 if batch == 1 else max(batch * 32, 262144)
            reps = (count + tx.shape[0] - 1) // tx.shape[0]
            pixels = tx.repeat(reps, 1, 1, 1)[:count].contiguous().pin_memory()
            result = torch.empty(count, net[-1].out_features).pin_memory()

            def one_pass():
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                with torch.no_grad():
                    for s in range(0, count, batch):
                        xb = pixels[s:s + batch].to(dev, non_blocking=True)
                        probs = torch.softmax(net((xb.float() / 255.0 - MEAN) / STD), 1)
                        result[s:s + batch].copy_(probs, non_blocking=True)
                torch.cuda.synchronize()
                return time.perf_counter() - t0

            one_pass()
            times = sorted(one_pass() for _ in range(3))
            print(json.dumps(dict(out, batch=batch, digits=count, digits_per_s=count / times[1])), flush=True)
        return
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
