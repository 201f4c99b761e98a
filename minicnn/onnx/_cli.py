"""The ``minicnn export`` command: a saved model file to an ONNX file (imports onnx only when it runs)."""

import argparse
import os
import sys

from . import DEFAULT_OPSET, INPUT_NDIMS


def _opset(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer opset, received {text!r}") from None


def add_parser(subparsers, common):
    """Add the ``export`` command to ``subparsers`` (``common``: the parent parser of shared options)."""
    p = subparsers.add_parser("export", parents=[common], help="write a saved model as an ONNX file",
                              description="Write a model saved by 'minicnn fit' (or CNNClassifier.save) as an ONNX "
                                          "file that ONNX Runtime runs with the same outputs (label and "
                                          "probabilities, or variable). Needs the onnx package.")
    p.add_argument("--model", required=True, help="model file written by 'minicnn fit'")
    p.add_argument("--out", required=True, help="ONNX file to write (replaced if it exists)")
    p.add_argument("--opset", type=_opset, default=None, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--input-ndim", type=int, choices=INPUT_NDIMS, default=None,
                   help="rank of the input: 4 = images in the model's data_format (default), 2 = flat rows, "
                        "3 = single-channel (n, height, width)")
    p.add_argument("--embedding", action="store_true",
                   help="add an output 'embedding': the penultimate layer's outputs, as transform(X)")
    p.set_defaults(func=run)
    return p


def run(args):
    """Run ``minicnn export``; errors are raised for the CLI to print as one line."""
    from . import export_onnx, import_onnx
    from ..predictor import load_predictor

    import_onnx()   # before reading the model: a missing package is the first thing to say
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--out {args.out}: folder {folder} does not exist")
    if os.path.isdir(args.out):
        raise IsADirectoryError(f"--out {args.out} is a folder; give a file name such as model.onnx")
    if not os.path.exists(args.model):   # a FIFO or device is refused by the loader, saying what it is
        raise FileNotFoundError(f"--model {args.model}: no such file")
    if os.path.exists(args.out) and os.path.samefile(args.out, args.model):
        raise ValueError(f"--out {args.out} is the model file itself; choose another file name")
    predictor = load_predictor(args.model)
    path = export_onnx(predictor, args.out, opset=args.opset, input_ndim=args.input_ndim, embedding=args.embedding)
    outputs = "label, probabilities" if predictor.estimator == "CNNClassifier" else "variable"
    outputs += ", embedding" if args.embedding else ""
    from .._cli_report import check_onnx_file, wrote

    print(wrote(path, f"{predictor.estimator}, opset {args.opset or DEFAULT_OPSET}, input X float32, outputs "
                      f"{outputs}", check_onnx_file(path, predictor, args.input_ndim)), file=sys.stderr)
    return 0
