"""The embedded sandbox: a Kubernetes API emulator and an OVH API sandbox, both over HTTPS on 127.0.0.1.

Needs the ``sandbox`` extra (``pip install 'ovh-s3-operator[sandbox]'``).
"""
