"""bd-plugin-baiqa: backdoors in no-reference IQA (P-BAIQA, C-BAIQA) with the scalable UAP-DCT trigger.

Yu et al., "Backdoor Attacks against No-Reference Image Quality Assessment Models via a
Scalable Trigger", AAAI 2025 (arXiv:2412.07277). Cheap to import: no torch here.
"""

__version__ = "0.1.0"
