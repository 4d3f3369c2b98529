"""Models: UNet, Mask R-CNN, classical assists, training, evaluation. No Qt."""
