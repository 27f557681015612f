"""HTML pages of images, written with dominate (which escapes all text and attributes)."""
import os
from urllib.parse import quote

import dominate
from dominate.tags import a, br, h3, img, meta, p, table, td, tr

from util.util import atomic_write_text


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

    def get_image_dir(self):
        return self.img_dir

    def add_header(self, text):
        with self.doc:
            h3(text)

    def add_text(self, text):
        with self.doc:
            p(text)

    def add_images(self, ims, txts, links, width=256):
        """One table row: each image file name (relative to images/) with its caption, linked to links[i]."""
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

    def save(self):
        atomic_write_text(os.path.join(self.web_dir, 'index.html'), self.doc.render())


def image_url(name):
    return quote('images/' + name.replace(os.sep, '/'))
