"""What the command-line tools (function.build, function.update, function.store) share."""


class _Refused(Exception):
    """What the first look would have said (a bad value, --help): said by the full parse, as argparse says it."""


def _refuse(*_):
    raise _Refused


def parse_args(parser, argv=None):
    """``parser.parse_args(argv)``, an unknown argument said first. argparse checks the required ones
    before it looks for unknown ones: "--ouput x" had been told only "the following arguments are
    required: --out", the typo unsaid. Exits 2 with argparse's usage line, as argparse does."""
    required = [action for action in parser._actions if action.required]
    for action in required:  # a first look for unknown arguments alone
        action.required = False
    # a bad value and --help are said by the full parse below: said here, their usage line had shown the
    # required options as optional ("[--input PATH] [--out OUT]")
    parser.error = parser.print_help = _refuse
    try:
        _, unknown = parser.parse_known_args(argv)
    except _Refused:
        unknown = []
    finally:
        del parser.error, parser.print_help
        for action in required:
            action.required = True
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return parser.parse_args(argv)
