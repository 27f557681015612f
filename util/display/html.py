"""HTML pages of images, written with dominate (which escapes all text and attributes)."""
import os
import shlex
import sys
from urllib.parse import quote

import dominate
from dominate.tags import a, br, details, h1, h3, img, meta, p, pre, summary, table, td, th, tr

from util.files import atomic_write_text


class HTML:
    """A page at web_dir/index.html whose images live in web_dir/images, linked relatively so the
    folder can be moved or zipped."""

    def __init__(self, web_dir, title, refresh=0):
        self.title = title
        self.web_dir = web_dir
        self.img_dir = os.path.join(self.web_dir, 'images')
        os.makedirs(self.img_dir, exist_ok=True)
        self.doc = dominate.document(title=title)
        if refresh > 0:
            with self.doc.head:
                meta(http_equiv='refresh', content=str(refresh))
        with self.doc:
            h1(title)

    def get_image_dir(self):
        return self.img_dir

    def add_header(self, text):
        with self.doc:
            h3(text)

    def add_text(self, text):
        with self.doc:
            p(text)

    def add(self, element):
        """Append a dominate element, e.g. the loss charts of util/display/loss_plot.py."""
        self.doc.add(element)

    def add_table(self, rows):
        """A table of (name, value) rows, e.g. a summary at the top; a value may be a dominate element."""
        with self.doc:
            with table(cls='summary', style='border-collapse: collapse; text-align: left;'):
                for name, value in rows:
                    with tr():
                        th(name, style='padding: 2px 12px 2px 0; vertical-align: top;')
                        td(value)

    def add_images(self, ims, txts, links, width=256):
        """One table row: each image file name (relative to images/) with its caption, linked to links[i]. A link
        to another file (the full-precision data an 8-bit preview shows) is also named under the caption, as a
        download."""
        with self.doc:
            with table(border=1, style='table-layout: fixed;'):
                with tr():
                    for im, txt, link in zip(ims, txts, links):
                        with td(style='word-wrap: break-word;', halign='center', valign='top'):
                            with p():
                                with a(href=image_url(link)):
                                    img(style=f'width:{width}px', src=image_url(im))
                                br()
                                p(txt)
                                if link != im:
                                    p(a(os.path.basename(link), href=image_url(link), download=''), cls='data-file')

    def save(self):
        atomic_write_text(os.path.join(self.web_dir, 'index.html'), self.doc.render())


def image_url(name):
    return quote('images/' + name.replace(os.sep, '/'))


def gallery_summary(opt, epoch, count):
    """(name, value) rows for the top of test.py's gallery: what made these images, and how many."""
    options = '\n'.join(f'{key}: {value}' for key, value in sorted(vars(opt).items()))
    mode = ('eval: running BatchNorm statistics, no dropout' if opt.eval
            else 'train: batch statistics and dropout, as in the paper')
    return [
        ('model', f'{opt.model}, generator {opt.netG} (ngf {opt.ngf}, norm {opt.norm})'),
        ('checkpoint', f'{os.path.join(opt.checkpoints_dir, opt.name)}, epoch {epoch}'),
        ('images', f'{count} from {opt.dataroot} (phase {opt.phase}, {opt.direction})'),
        ('mode', mode),
        ('command', shlex.join(['python', os.path.basename(sys.argv[0]), *sys.argv[1:]])),
        ('options', details(summary('all options'), pre(options))),
    ]
