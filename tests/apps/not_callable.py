"""An app whose callable is not callable."""

application = "I am a string"
