"""What the user sees: the console and its progress bar, visdom, the web pages and their loss charts."""
