"""What the command-line tools (function.build, function.update, function.store) share."""


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)``, an unknown argument said first. argparse checks the required ones
    before it looks for unknown ones: "--ouput x" had been told only "the following arguments are
    required: --out", the typo unsaid. Exits 2 with argparse's usage line, as argparse does."""
    required = [action for action in parser._actions if action.required]
    for action in required:  # a first look for unknown arguments alone
        action.required = False
    try:
        _, unknown = parser.parse_known_args(argv)
    finally:
        for action in required:
            action.required = True
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return parser.parse_args(argv)
