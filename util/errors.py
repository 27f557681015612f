"""The one error type for a user's mistake: a bad flag, file, folder, image or checkpoint.

It is printed as one line, 'error: <what is wrong and how to fix it>', with no traceback, and the
process exits with status 1. It is also an Exception, so that a DataLoader worker hands it to the main
process (a bare SystemExit would just end the worker); torch re-creates it there from the worker's
formatted traceback, whose last line holds the message, and only that line is kept.
"""
import gc
import sys


class UserError(SystemExit, Exception):
    def __init__(self, message):
        if 'Original Traceback' in message:
            message = message.rstrip().rpartition(f'{type(self).__name__}: ')[2].removeprefix('error: ')
        self.message = message
        super().__init__(f'error: {message}')


def run_command(main):
    """main() as a command's entry point. A UserError still ends it as one line on stderr and status 1, but only
    after the frames it unwound are freed: they hold the DataLoader and its worker processes, which would
    otherwise live on into the interpreter's exit, where multiprocessing terminates them and torch's
    SIGCHLD handler reports each killed worker with a traceback."""
    try:
        main()
    except UserError as error:
        message = str(error)
        error.__traceback__ = None
    else:
        return
    gc.collect()  # the frames' reference cycles too: the loader's iterator then shuts its workers down
    sys.exit(message)
