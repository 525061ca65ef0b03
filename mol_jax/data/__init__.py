"""The data path: raw videos -> aligned clips -> TFDS records -> training batches.

`layouts` lists the videos of a raw folder; `faces`, `registration` and
`preprocess` detect, align and register faces and compute the TV-L1 flow
targets; `builder` and `builders/` are the TFDS builders; `synthetic` makes
the licence-free set; `input_pipeline` reads built sets as batches.
"""
