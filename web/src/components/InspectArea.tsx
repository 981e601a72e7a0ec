import { Button, FileInput, Group, Stack, Text, Title } from "@mantine/core";
import { useEffect, useRef, useState } from "react";
import { boxFromDrag, inspectedShare, type Box } from "../lib/area";

const pct = (v: number) => `${Math.round(v * 100)} %`;

/** The inspection area of a dataset's models: boxes dragged on one of its photos over what the model should ignore
 * (a printed date code, a label, the tray), or a mask image uploaded instead. */
export function InspectArea({
  photo,
  onPhoto,
  boxes,
  onBoxes,
  maskFile,
  onMaskFile,
  current,
  onRemove,
}: {
  photo: File | null;
  onPhoto: (f: File | null) => void;
  boxes: Box[];
  onBoxes: (b: Box[]) => void;
  maskFile: File | null;
  onMaskFile: (f: File | null) => void;
  /** the chosen dataset's area now (the share inspected), null: the whole photo */
  current: number | null;
  onRemove: () => void;
}) {
  const [url, setUrl] = useState<string | null>(null);
  const [drag, setDrag] = useState<{ x0: number; y0: number; x1: number; y1: number } | null>(null);
  const surface = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!photo) {
      setUrl(null);
      return;
    }
    const u = URL.createObjectURL(photo);
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [photo]);

  function at(e: React.PointerEvent) {
    const r = surface.current!.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top, width: r.width, height: r.height };
  }

  function down(e: React.PointerEvent) {
    const p = at(e);
    surface.current!.setPointerCapture?.(e.pointerId);
    setDrag({ x0: p.x, y0: p.y, x1: p.x, y1: p.y });
  }

  function move(e: React.PointerEvent) {
    if (!drag) return;
    const p = at(e);
    setDrag({ ...drag, x1: p.x, y1: p.y });
  }

  function up(e: React.PointerEvent) {
    if (!drag) return;
    const p = at(e);
    const box = boxFromDrag(drag.x0, drag.y0, p.x, p.y, p.width, p.height);
    setDrag(null);
    if (box) onBoxes([...boxes, box]);
  }

  const r = surface.current?.getBoundingClientRect();
  const preview = drag && r ? boxFromDrag(drag.x0, drag.y0, drag.x1, drag.y1, r.width, r.height) : null;
  const shown = preview ? [...boxes, preview] : boxes;

  return (
    <Stack gap="xs" data-testid="inspect-area">
      <Title order={3} size="h4">
        Inspection area (optional)
      </Title>
      <Text size="sm" c="gray.7">
        Drag on a photo over what changes from part to part and is no defect (a printed date code, a label, the tray),
        with a margin around it: the model ignores those boxes. Or upload a mask the size of the photos, white where
        it inspects and black where it ignores.
      </Text>
      {current !== null && !boxes.length && !maskFile && (
        <Group gap="xs">
          <Text size="sm" data-testid="area-current">
            This dataset&apos;s models inspect {pct(current)} of each photo.
          </Text>
          <Button variant="default" size="compact-sm" onClick={onRemove} data-testid="area-remove">
            Inspect the whole photo
          </Button>
        </Group>
      )}
      {url ? (
        <div style={{ position: "relative", maxWidth: 360, userSelect: "none" }}>
          <img src={url} alt="the photo the area is drawn on" style={{ width: "100%", display: "block" }} draggable={false} />
          <div
            ref={surface}
            data-testid="area-surface"
            title="Drag to mark a box the model ignores"
            style={{ position: "absolute", inset: 0, cursor: "crosshair", touchAction: "none" }}
            onPointerDown={down}
            onPointerMove={move}
            onPointerUp={up}
            onPointerCancel={() => setDrag(null)}
          >
            {shown.map((b, i) => (
              <div
                key={i}
                data-testid="area-box"
                style={{
                  position: "absolute",
                  left: `${b.x * 100}%`,
                  top: `${b.y * 100}%`,
                  width: `${b.w * 100}%`,
                  height: `${b.h * 100}%`,
                  background: "rgba(0, 0, 0, 0.6)",
                  outline: "2px solid #e03131",
                }}
              />
            ))}
          </div>
        </div>
      ) : (
        <FileInput label="A photo to draw on" accept="image/*" value={null} onChange={onPhoto} data-testid="area-photo" />
      )}
      <Group gap="xs">
        <Button variant="default" size="compact-sm" disabled={!boxes.length} onClick={() => onBoxes(boxes.slice(0, -1))}>
          Undo box
        </Button>
        <Button variant="default" size="compact-sm" disabled={!boxes.length} onClick={() => onBoxes([])}>
          Clear boxes
        </Button>
        {boxes.length > 0 && (
          <Text size="sm" data-testid="area-share">
            {pct(inspectedShare(boxes))} of each photo inspected
          </Text>
        )}
      </Group>
      <FileInput
        label="…or a mask image"
        accept="image/png,image/bmp,image/tiff,image/jpeg"
        value={maskFile}
        onChange={onMaskFile}
        clearable
        disabled={boxes.length > 0}
        data-testid="area-mask"
      />
    </Stack>
  );
}
