"""Darknet front end and YOLOv2 specifics: cfg, weights, letterbox, region decoding, NMS, drawing."""
