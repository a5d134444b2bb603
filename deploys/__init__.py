"""pyinfra deploy scripts, run as files (``pyinfra INVENTORY deploys/host.py``), never imported.

In the checkout they live at the top (``deploys/``); an installed archfleet carries them as ``archfleet/deploys``
(a link in the checkout) so that the CLI finds them from any directory.
"""
