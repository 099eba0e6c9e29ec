import collections
from PIL import Image, ImageDraw
from tests.tileserver import test_versatiles_render as t
from tests.tileserver.test_versatiles_render import pool  # noqa


def test_explore(pool, liechtenstein_url):
    z = 14
    img = t._render(pool, t.STYLE, z)
    bbox = t._view_bbox(z)
    pts = t._inner_points(liechtenstein_url, "water_polygons", bbox, "kind IN ('river', 'water')")
    c = collections.Counter(tuple(img[t._pixel(bbox, x, y)]) for x, y in pts)
    print(c.most_common(15))
    im = Image.fromarray(img.astype("uint8")); d = ImageDraw.Draw(im)
    for x, y in pts:
        r, cc = t._pixel(bbox, x, y); d.point((cc, r), fill=(255, 0, 0))
    im.save("/tmp/pts14.png")
