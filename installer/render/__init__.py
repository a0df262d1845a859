"""Rendering what the install applies, and the image completeness gate.

One path for every caller (`bundle build`, `medai render`, `medai charts images`, install): charts are rendered by
the bundle's helm at the bundled Kubernetes version (helm.py), every string of the output is searched for image
references (discover.py, refs.py), the gate decides what the bundle must carry (gate.py), and every object is
validated against its schema (validate.py).
"""
