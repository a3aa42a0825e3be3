"""A synthetic dress catalog: labelled photos for tests, demos and benchmarks.

Every facet label is drawn, so the true labels can be read off the picture alone:

- silhouette: the outline of the skirt and waist. a-line: straight trapezoid flaring from the
  waist; sheath: narrow column close to the body with a visible waist; fit-and-flare: fitted
  bodice, waist seam, then a strong bell-shaped flare; shift: straight boxy, no waist;
  ball-gown: very wide full skirt to the floor (always floor length).
- neckline: the cut of the bodice's top edge. v-neck: deep V; crew: round, high at the neck
  base; boat: wide, shallow, almost horizontal; sweetheart: strapless-looking double curve at
  the bust (thin straps); halter: straps to a band at the neck, bare shoulders (always
  sleeveless).
- sleeve: how much of the arm the fabric covers. sleeveless: none; cap: the shoulder only;
  short: the upper half of the upper arm; three-quarter: to below the elbow; long: to the wrist.
- occasion, one consistent rule of length, palette and finish. The length decides first:
  above the knee is cocktail, floor length is evening; at knee length a light pastel dress
  (usually printed) is casual and a muted solid one is work. No single cue is enough (cocktail
  and evening share colours, casual and work share the length), so the facet is not trivial.

  | occasion | length             | palette                               | finish              |
  |----------|--------------------|---------------------------------------|---------------------|
  | casual   | knee               | light pastel                          | 75% printed         |
  |          |                    |                                       | (stripes, dots,     |
  |          |                    |                                       | gingham, flowers)   |
  | work     | knee to just below | muted (navy, charcoal, grey, camel,   | solid, matte        |
  |          |                    | olive, taupe...)                      |                     |
  | cocktail | above the knee     | saturated bright, 30% jewel or black  | light sheen, rare   |
  |          |                    |                                       | sequins             |
  | evening  | floor              | jewel tones or black, 30% saturated   | satin sheen, often  |
  |          |                    |                                       | sequins             |

  Length belongs to the occasion; only ball-gown forces it (a ball-gown is always an evening
  dress), so silhouette and occasion never disagree.

Class priors are Zipf-like in the taxonomy's order (the first class most common), mixed with a
uniform share so that the rarest class keeps at least ~5%. Labels are sampled independently of
the drawing (`sample_products`), then each product gets 2-4 photos of the same dress on a model,
a mannequin or a stand, in front of varied walls, floors and props, at varied scale, position,
rotation and arm pose. Optional label noise flips a product's catalog label (the same wrong
label on all its photos); `labels_true.csv` always holds the truth. A few files are corrupt on
purpose (truncated JPEG, text named .jpg, empty file), listed in `corrupt.txt`.

Output (the import format of `dressvision import`, see the README): `labels.csv` with
`image_id,path,product_id,<facets>,x0,y0,x1,y1,split` (split left empty: the system assigns it;
boxes are the tight dress box in pixels, empty for corrupt files), `labels_true.csv`,
`corrupt.txt` (one relative path per line) and `images/<product_id>/<n>.jpg`.
Everything is a function of the seed: the same seed gives the same bytes.

The modules, in the order a photo is made: `rules` (the body's landmarks and one drawing rule per
label), `sampling` (labels and the look of each product's dress), `geometry` (the outline of the
dress and arms, the camera), `scene` (figure, wall, floor, props), `render` (one photo),
`writer` (the catalog folder) and `contact_sheet` (a picture of the catalog to look at).
"""

from local.synth_catalog.contact_sheet import make_contact_sheet
from local.synth_catalog.render import render_photo
from local.synth_catalog.rules import check_drawable
from local.synth_catalog.sampling import DressStyle, Product, class_prior, sample_products
from local.synth_catalog.writer import BOX_COLUMNS, CORRUPT_KINDS, CatalogSummary, generate_catalog

__all__ = [
    "BOX_COLUMNS",
    "CORRUPT_KINDS",
    "CatalogSummary",
    "DressStyle",
    "Product",
    "check_drawable",
    "class_prior",
    "generate_catalog",
    "make_contact_sheet",
    "render_photo",
    "sample_products",
]
