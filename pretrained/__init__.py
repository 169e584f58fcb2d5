"""The models shipped with aecompress; installed as the package `aecompress.pretrained`.

models.json lists every checkpoint here by model id and weights fingerprint and names the one
`aecompress encode` uses by default; aecompress.registry reads it.
"""
