"""Dataset formats: COCO, PNG label maps, instance maps, labelme, YOLO-seg, VOC. No Qt, no torch."""
