"""glint"""
