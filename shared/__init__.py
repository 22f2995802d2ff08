"""The FEC to Cegid Loop import pipeline: plain Python, no azure.functions import."""
