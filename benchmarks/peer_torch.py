#!/usr/bin/python3
"""The peer for `digitflow bench`: the same model (built from our model YAML) in PyTorch
(Debian's python3-torch, i.e. libtorch 1.13 with its oneDNN convolutions), timed the same
way: training steps with Adam at batch 128 after a warm-up, and inference batches with the
median latency. Prints one JSON object per run, with the keys `digitflow bench --json` uses."""
import argparse
import json
import statistics
import sys
import time

import torch
import yaml


def build(spec_path):
    spec = yaml.safe_load(open(spec_path))
    channels = spec.get("input", {}).get("channels", 1)
    height = spec.get("input", {}).get("height", 28)
    width = spec.get("input", {}).get("width", 28)
    layers, shape = [], (channels, height, width)
    for entry in spec["layers"]:
        name, args = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        args = args or {}
        if name == "conv2d":
            layer = torch.nn.Conv2d(shape[0], args["out"], args.get("kernel", 3), args.get("stride", 1),
                                    args.get("padding", 0), bias=args.get("bias", True))
        elif name == "batchnorm2d":
            layer = torch.nn.BatchNorm2d(shape[0])
        elif name == "relu":
            layer = torch.nn.ReLU()
        elif name == "maxpool":
            k = args.get("kernel", 2)
            layer = torch.nn.MaxPool2d(k, args.get("stride", k))
        elif name == "dropout":
            layer = torch.nn.Dropout(args.get("rate", 0.5))
        elif name == "flatten":
            layer = torch.nn.Flatten()
        elif name == "dense":
            layer = torch.nn.Linear(shape[0], args["out"], bias=args.get("bias", True))
        else:
            sys.exit(f"{spec_path}: unknown layer {name}")
        layers.append(layer)
        with torch.no_grad():
            shape = tuple(torch.nn.Sequential(*layers)(torch.zeros(1, channels, height, width)).shape[1:])
    return torch.nn.Sequential(*layers), (channels, height, width), spec.get("name", spec_path)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("what", choices=["train", "infer"])
    p.add_argument("--model", required=True, help="model YAML (config/models/*.yaml)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--images", type=int, default=2560)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--seconds", type=float, default=2.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    net, shape, name = build(a.model)
    out = {"bench": a.what, "model": name, "threads": a.threads, "peer": f"torch {torch.__version__}"}
    if a.what == "train":
        batch = a.batch or 128
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)
        x = torch.randn(batch, *shape)
        y = torch.arange(batch) % 10
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x), y).backward()
            opt.step()

        for _ in range(3):
            step()
        batches = max(1, a.images // batch)
        t0 = time.perf_counter()
        for _ in range(batches):
            step()
        seconds = time.perf_counter() - t0
        out.update(batch=batch, images=batches * batch, seconds=seconds, images_per_s=batches * batch / seconds)
    else:
        batch = a.batch or 256
        net.eval()
        x = torch.randn(batch, *shape)
        times = []
        with torch.no_grad():
            for _ in range(5):
                net(x)
            start = time.perf_counter()
            while len(times) < 5 or time.perf_counter() - start < a.seconds:
                t0 = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - t0)
        median = statistics.median(times)
        out.update(batch=batch, batches=len(times), images_per_s=batch / median, latency_us=median * 1e6)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
