"""Selfie intake, piece by piece: untrusted bytes in, one square RGB JPEG around one face out.

`bot.selfie` puts the pieces together (`SelfieIntake`) and is the module callers import.
Each module here is one step: `limits` (what an upload may be), `errors` (one error per
way it can be unusable), `signatures` (naming what was sent when it is no photo),
`decoding` (safe decode), `colour` (modes and ICC profiles to 8-bit sRGB), `orientation`
(finding a face in a photo stored sideways) and `framing` (the portrait crop).
"""
