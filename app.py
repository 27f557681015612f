"""A local web page to try trained generators: pick an experiment, drop an image, see and download its translation.

    python app.py --name facades_pix2pix           # then open http://127.0.0.1:7860
    python app.py --checkpoints_dir ./checkpoints --epoch 200 --model_suffix _ema --port 8000

The page lists every experiment under --checkpoints_dir that has <epoch>_net_G<model_suffix>.pth, --name
first. An upload is translated as `test.py --eval --preprocess none --dataroot IMAGE --name NAME` would:
with the generator alone (colorization experiments: from the image's lightness), in eval mode (running
statistics, no dropout, so the same image always gives the same output), at the image's own size, its
values mapped as the experiment's training mapped them. 8-bit pictures give an 8-bit PNG; other data (a
16-bit PNG, a TIFF of any type and band count, a NumPy .npy array) is read without loss and gives a file of
the output side's type and units (a 16-bit PNG, or a TIFF) to download, with an 8-bit picture of it on the
page. The page reports the time per image. It is served by Gradio, an optional package (pip install gradio), which
serves its own front-end: the page fetches nothing from the internet, and the server listens on 127.0.0.1.
"""
import os
import shutil
import sys
import tempfile
import time

import torch
from PIL import Image, UnidentifiedImageError

import models
from data import find_dataset_class, visual_mappings
from models.checkpoint import file_prefix, read_architecture
from options.app_options import AppOptions
from util.arrays import file_kind, image_channels, npy_header
from util.errors import UserError
from util.images import save_visual

# The image formats test.py reads (data/image_folder.IMG_EXTENSIONS), by the name PIL gives the file's format.
FORMATS = {'PNG': '.png', 'JPEG': '.jpg', 'BMP': '.bmp', 'TIFF': '.tif', 'WEBP': '.webp', 'PPM': '.ppm',
           'NPY': '.npy'}
NPY_SIGNATURE = b'\x93NUM'  # the first four bytes of NumPy's format
# A TIFF's first four bytes: little- or big-endian, classic or BigTIFF.
TIFF_SIGNATURES = (b'II*\0', b'MM\0*', b'II+\0', b'MM\0+')
# Small images fill their frame, their pixels shown as squares rather than blurred.
CSS = '#input img, #output img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    opt = AppOptions().parse(argv)
    translator = Translator(argv, opt)
    gradio = import_gradio()
    page = build_page(gradio, translator)
    print(f'experiments: {", ".join(translator.experiments)}; serving the page on http://127.0.0.1:{opt.port}')
    try:
        page.launch(server_name='127.0.0.1', server_port=opt.port, ssr_mode=False, show_error=True,
                    footer_links=['gradio'], css=CSS)
    except OSError as e:
        raise UserError(f'cannot serve on 127.0.0.1:{opt.port} ({e}); choose another --port')


def import_gradio():
    # Otherwise Gradio reports usage to its servers and asks for its latest version, over the internet.
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        import gradio
    except ImportError:
        raise UserError('app.py needs gradio, which is optional: pip install "gradio>=6"')
    if int(gradio.__version__.split('.')[0]) < 6:
        raise UserError(f'app.py needs gradio 6 or newer (this is {gradio.__version__}): pip install -U "gradio>=6"')
    return gradio


def list_experiments(opt):
    """The folders under --checkpoints_dir holding the generator file that --epoch/--model_suffix name, --name first."""
    generator = f'{file_prefix(opt)}_net_G{opt.model_suffix}.pth'
    root = opt.checkpoints_dir
    found = sorted(name for name in (os.listdir(root) if os.path.isdir(root) else [])
                   if os.path.isfile(os.path.join(root, name, generator)))
    if not found:
        raise UserError(f'no experiment under {root} has a {generator}: train one (python train.py --name NAME), '
                        f'or point --checkpoints_dir, --epoch and --model_suffix at one')
    if opt.name in found:
        return [opt.name] + [name for name in found if name != opt.name]
    if opt.is_typed('name'):
        raise UserError(f'{os.path.join(root, opt.name, generator)} does not exist; experiments with one: '
                        f'{", ".join(found)}')
    return found


class Translator:
    """The experiments under --checkpoints_dir, each loaded on first use, and the translation of one upload."""

    def __init__(self, argv, opt):
        self.argv, self.opt = argv, opt
        self.experiments = list_experiments(opt)
        self.loaded = {}
        scratch = tempfile.mkdtemp(prefix='pix2pix_app_')
        # Uploads are copied under their own names, so that what the datasets say of a file names the user's.
        self.uploads, self.outputs = os.path.join(scratch, 'uploads'), os.path.join(scratch, 'outputs')
        os.mkdir(self.uploads)
        os.mkdir(self.outputs)

    def load(self, name):
        """(options, model, {visual: ValueMapping}) of an experiment, as test.py --eval --preprocess none would
        build them."""
        if name not in self.loaded:
            if name not in self.experiments:
                raise UserError(f'unknown experiment {name!r}; choose one of {", ".join(self.experiments)}')
            saved = read_architecture(self.opt.derive(name=name)) or {}
            # Pairs need targets; single images take the generator alone (as test.py does for them).
            model = 'colorization' if saved.get('model') == 'colorization' else 'test'
            settings = dict(name=name, model=model, eval=True, preprocess='none', no_flip=True)
            settings.update({'direction': saved['direction']} if 'direction' in saved else {})
            opt = AppOptions().parse(self.argv, settings)
            model = models.create_model(opt)
            model.setup(opt)  # in --eval's test mode
            self.loaded[name] = opt, model, visual_mappings(opt, model.visual_names, model.visual_roles['input'])
        return self.loaded[name]

    def translate(self, name, upload):
        """(input picture, output picture path, output file path, seconds) for the uploaded file: the output
        file holds the output side's type and units, and is the picture itself for 8-bit pictures. UserError
        for a bad upload."""
        opt, model, mappings = self.load(name)
        roles = model.visual_roles
        try:
            image_path = self.checked_copy(upload)
            dataset_class = find_dataset_class(opt.dataset_mode)
            self.check_values(image_path, os.path.basename(upload), name, dataset_class, mappings[roles['input']])
            start = time.perf_counter()
            dataset = dataset_class(opt.derive(dataroot=image_path))
            model.set_input(torch.utils.data.default_collate([dataset[0]]))
        except UserError as e:  # a message about the copy names the upload as the user knows it
            raise UserError(e.message.replace(self.uploads + os.sep, '')) from None
        model.test()
        visuals = model.get_current_visuals()
        seconds = time.perf_counter() - start
        stem = f'{os.path.splitext(os.path.basename(upload))[0]}_{name}'
        picture, data = save_visual(visuals[roles['output']][0], mappings[roles['output']], self.outputs, stem)
        source = mappings[roles['input']].preview(visuals[roles['input']][0])
        return source, os.path.join(self.outputs, picture), os.path.join(self.outputs, data), seconds

    def checked_copy(self, upload):
        """The path of a copy of the upload under the extension of its format, so that the datasets read it as
        test.py would; checked from its header alone first (a huge image is refused before it is decoded)."""
        file = os.path.basename(upload)
        kinds = 'a PNG, JPEG, BMP, TIFF, WebP or PPM image, or a NumPy .npy array'
        try:
            width, height, kind = read_header(upload)
        except UserError as e:  # named as the user knows the file, not by the server's copy
            raise UserError(e.message.replace(upload, file)) from None
        except Image.DecompressionBombError:
            raise UserError(f'{file} has more pixels than PIL will open: upload an image of at most '
                            f'{self.opt.max_image_size} pixels per side')
        except (UnidentifiedImageError, OSError, ValueError):  # tifffile's errors are ValueErrors
            raise UserError(f'{file} is not an image: upload {kinds}')
        if kind not in FORMATS:
            raise UserError(f'{file} is a {kind} image: upload {kinds}')
        if max(width, height) > self.opt.max_image_size:
            raise UserError(f'{file} is {width}x{height} pixels, larger than this page takes: at most '
                            f'{self.opt.max_image_size} pixels per side (app.py --max_image_size); upload a smaller image')
        path = os.path.join(self.uploads, os.path.splitext(file)[0] + FORMATS[kind])
        shutil.copyfile(upload, path)
        return path

    @staticmethod
    def check_values(path, file, name, dataset_class, mapping):
        """That the experiment takes the upload's values (mapping: its input's): 8-bit pictures for a model of
        8-bit pictures (a colour one made gray for a gray model, as test.py does), else the type and channel
        count it was trained on (the dataset then refuses NaN). Colorization takes any picture, as its
        lightness."""
        if not hasattr(dataset_class, 'files'):  # a dataset that reads every picture its own way
            return
        dtype, channels = file_kind(path)
        if (dtype, mapping.dtype) == ('uint8', 'uint8') and mapping.channels in (1, 3):
            if channels == 1 and mapping.channels == 3:
                raise UserError(f'{file} is a grayscale image, but {name} translates colour (RGB) images: upload '
                                f'a colour image')
        elif (dtype, channels) != (mapping.dtype, mapping.channels):
            raise UserError(f'{file} holds {dtype} values in {plural(channels, "channel")}, but {name} translates '
                            f'{mapping.dtype} images of {plural(mapping.channels, "channel")}, as it was trained: '
                            f'upload such an image')


def read_header(path):
    """(width, height, format name) of an image from its header, no pixels decoded: TIFFs through tifffile (Pillow
    opens few of the float and multi-band ones), NumPy arrays memory-mapped, the other formats through Pillow."""
    with open(path, 'rb') as f:
        signature = f.read(4)
    if signature == NPY_SIGNATURE:
        shape, _ = npy_header(path)  # refuses an array of Python objects, which loading would unpickle
        image_channels(shape, path)
        return shape[1], shape[0], 'NPY'
    if signature in TIFF_SIGNATURES:
        import tifffile  # only for TIFFs, as util.arrays imports it
        with tifffile.TiffFile(path) as tiff:
            page = tiff.pages[0]
            return page.imagewidth, page.imagelength, 'TIFF'
    with Image.open(path) as image:
        return *image.size, image.format


def plural(count, noun):
    return f'{count} {noun}{"s" if count != 1 else ""}'


def build_page(gr, translator):
    device = translator.opt.device

    def run(name, upload):
        no_file = gr.update(value=None, visible=False)
        if not upload:
            return None, None, no_file, ''
        try:
            source, picture, data, seconds = translator.translate(name, upload)
        except UserError as e:
            return None, None, no_file, f'**Error:** {e.message}'
        height, width = source.shape[:2]
        status = f'{width}x{height} pixels: {seconds * 1000:.0f} ms per image ({device})'
        if data == picture:  # an 8-bit picture: the output's own download button gives it
            return source, picture, no_file, status
        status += f'; {os.path.basename(data)}, below, holds the output in the data\'s own values'
        return source, picture, gr.update(value=data, visible=True), status

    with gr.Blocks(title='pix2pix') as page:
        gr.Markdown('## pix2pix\nPick an experiment, then drop an image below or click to choose one. The output '
                    'is the generator in eval mode at the image\'s own size, as `test.py --eval --preprocess none`.')
        experiment = gr.Dropdown(translator.experiments, value=translator.experiments[0], label='Experiment')
        upload = gr.File(label='Image', type='filepath', elem_id='upload')
        status = gr.Markdown(elem_id='status')
        with gr.Row():
            source = gr.Image(label='Input', format='png', interactive=False, buttons=[], height=320,
                              elem_id='input')
            output = gr.Image(label='Output', type='filepath', interactive=False, buttons=['download'], height=320,
                              elem_id='output')
        # Data other than 8-bit pictures: the output in the data's type and units (16-bit PNG, TIFF), which the
        # picture above only shows.
        download = gr.File(label='Output file', interactive=False, visible=False, elem_id='download')
        for event in (upload.change, experiment.change):  # one at a time: they share the models
            event(run, [experiment, upload], [source, output, download, status], concurrency_id='translate',
                  concurrency_limit=1)
    return page


if __name__ == '__main__':
    main()
