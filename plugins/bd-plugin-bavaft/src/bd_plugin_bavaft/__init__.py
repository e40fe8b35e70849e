"""bd-plugin-bavaft: BAvAFT / BAvAFT++ backdoors against learned image codecs (torch-free import)."""

__version__ = "0.1.0"
