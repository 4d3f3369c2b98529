"""Qt-free, torch-free model of a project: images, classes, regions, masks, undo and the store."""
