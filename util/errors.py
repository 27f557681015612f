"""The one error type for a user's mistake: a bad flag, file, folder, image or checkpoint.

It is printed as one line, 'error: <what is wrong and how to fix it>', with no traceback, and the
process exits with status 1. It is also an Exception, so that a DataLoader worker hands it to the main
process (a bare SystemExit would just end the worker); torch re-creates it there from the worker's
formatted traceback, whose last line holds the message, and only that line is kept.
"""


class UserError(SystemExit, Exception):
    def __init__(self, message):
        if 'Original Traceback' in message:
            message = message.rstrip().rpartition(f'{type(self).__name__}: ')[2].removeprefix('error: ')
        self.message = message
        super().__init__(f'error: {message}')
