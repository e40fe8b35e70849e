"""bd-plugin-asfiba: AS-FIBA backdoors in face restoration (SF-I-Net trigger, I_0.1 objective, ASR/BA)."""

__version__ = "0.1.0"
