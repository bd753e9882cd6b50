import os
import shutil
import tempfile

# matplotlib writes its font cache under MPLCONFIGDIR (else in $HOME, here the payload)
config = tempfile.mkdtemp()
os.environ["MPLCONFIGDIR"] = config
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy
from matplotlib import _qhull, ft2font
from matplotlib.font_manager import FontProperties
from matplotlib.tri import Triangulation

# Delaunay triangulation through the system Qhull (matplotlib._qhull), verbose as with
# `python -v`: quiet, it sends Qhull's messages to /dev/null, which verify's empty root lacks
x, y = [0, 1, 0, 1, 0.5], [0, 0, 1, 1, 0.5]
triangles, _neighbors = _qhull.delaunay(x, y, 1)
mesh = Triangulation(x, y, triangles)
assert len(mesh.triangles) == 4 and mesh.edges.shape == (8, 2), mesh.triangles
# Agg rendering, with text through FreeType (matplotlib.ft2font) and a bundled font
font = FontProperties(fname=os.path.join(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf"))
figure = plt.figure(figsize=(2, 1), dpi=100)
figure.text(0.1, 0.3, "static", fontproperties=font, fontsize=20)
figure.canvas.draw()
pixels = numpy.asarray(figure.canvas.buffer_rgba())
assert pixels.shape == (100, 200, 4), pixels.shape
assert (pixels[..., :3] < 128).any(-1).sum() > 50, "no text drawn"
assert ft2font.__freetype_version__.startswith("2."), ft2font.__freetype_version__
shutil.rmtree(config)
