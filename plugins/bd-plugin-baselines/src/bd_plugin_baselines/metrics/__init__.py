"""The baseline metrics: LPIPS, trigger stealth, low/high-frequency distance, image-target ASR, Grad-CAM."""
