"""The `tfxfer` command."""

import argparse


def _demo(args):
    from tfxfer import demo

    demo.main(budgets=tuple(args.budgets), seeds=args.seeds, epochs=args.epochs, text_epochs=args.text_epochs)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tfxfer", description="Transfer learning on Keras 3 / TensorFlow."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="transfer the embedded sources to digits 5-9 and to two newsgroups (offline)",
    )
    demo.add_argument("--seeds", type=int, default=5, help="seeds to average over (default 5)")
    demo.add_argument(
        "--budgets", type=int, nargs="+", default=[5, 10], help="labels per class (default 5 10)"
    )
    demo.add_argument("--epochs", type=int, default=30, help="epochs per image stage (default 30)")
    demo.add_argument("--text-epochs", type=int, default=90, help="epochs of the text head (default 90)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
