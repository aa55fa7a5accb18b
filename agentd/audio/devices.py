"""List ALSA cards and PCMs for `agentd devices` (data only; the CLI prints it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentd.errors import AudioError


@dataclass(frozen=True, slots=True)
class Card:
    index: int
    id: str
    name: str
    longname: str


@dataclass(frozen=True, slots=True)
class DeviceList:
    cards: list[Card] = field(default_factory=list)
    capture_pcms: list[str] = field(default_factory=list)
    playback_pcms: list[str] = field(default_factory=list)


def list_devices() -> DeviceList:
    """Cards (hw:N) and the PCM names usable as capture.device / playback.device."""
    try:
        import alsaaudio

        cards = []
        for index, card_id in zip(alsaaudio.card_indexes(), alsaaudio.cards(), strict=False):
            name, longname = alsaaudio.card_name(index)
            cards.append(Card(index, card_id, name, longname))
        return DeviceList(
            cards,
            list(alsaaudio.pcms(alsaaudio.PCM_CAPTURE)),
            list(alsaaudio.pcms(alsaaudio.PCM_PLAYBACK)),
        )
    except ImportError as exc:
        raise AudioError(f"pyalsaaudio is not installed: {exc}") from None
    except Exception as exc:  # ALSAAudioError from a half-configured card
        raise AudioError(f"cannot list ALSA devices: {exc}") from None


def format_devices(devices: DeviceList) -> str:
    """Human-readable listing for the CLI."""
    lines = ["cards:"]
    lines += [f"  hw:{c.index}  {c.id:<12} {c.longname}" for c in devices.cards] or ["  (none)"]
    lines.append("capture PCMs:")
    lines += [f"  {p}" for p in devices.capture_pcms] or ["  (none)"]
    lines.append("playback PCMs:")
    lines += [f"  {p}" for p in devices.playback_pcms] or ["  (none)"]
    return "\n".join(lines)
