"""Every editing tool, in toolbar order."""

from __future__ import annotations

from segstudio.gui.assist_tools import BoxGrabCutTool, ClickGrabCutTool, PromptTool, WatershedTool
from segstudio.gui.tools import BrushTool, EraserTool, LassoTool, PolygonTool, SelectTool, WandTool

TOOLS = [SelectTool, BrushTool, EraserTool, PolygonTool, LassoTool, WandTool, BoxGrabCutTool,
         ClickGrabCutTool, WatershedTool, PromptTool]
