"""The data path: raw videos -> aligned clips -> TFDS records -> training batches.

`layouts` lists the videos of a raw folder; `faces`, `registration` and
`preprocess` detect, align and register faces and compute the TV-L1 flow
targets; `records` is the clip record both build paths write; `builder` and
`builders/` are the TFDS builders; `beam_build` runs
the builders' pre-processing on Apache Beam; `synthetic` makes the
licence-free set; `sources` reads built sets (one, or several as one);
`input_pipeline` makes their batches.
"""
