"""Pictures and videos: reading, writing, drawing."""
