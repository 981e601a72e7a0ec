import { Button, Group, Text } from "@mantine/core";
import { useRef, useState } from "react";

const ACCEPT = ".png,.jpg,.jpeg,.bmp,.tif,.tiff,.zip,image/*,application/zip";

/** Drag and drop (or pick) image files and zip files. */
export function DropZone({ files, onFiles, label, testid }: { files: File[]; onFiles: (f: File[]) => void; label: string; testid: string }) {
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  const bytes = files.reduce((n, f) => n + f.size, 0);
  return (
    <div
      className={`lw-drop${over ? " active" : ""}`}
      onDragOver={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        onFiles([...files, ...Array.from(e.dataTransfer.files)]);
      }}
      data-testid={testid}
    >
      <Text fw={600}>{label}</Text>
      <Text size="sm" c="gray.7" mb="xs">
        Drop images (PNG, JPEG, BMP, TIFF) or zip files here, or
      </Text>
      <Group justify="center" gap="xs">
        <Button size="xs" variant="default" onClick={() => input.current?.click()}>
          Choose files
        </Button>
        {files.length > 0 && (
          <Button size="xs" variant="subtle" color="gray" onClick={() => onFiles([])}>
            Clear
          </Button>
        )}
      </Group>
      <input
        ref={input}
        type="file"
        multiple
        accept={ACCEPT}
        hidden
        aria-label={label}
        onChange={(e) => {
          onFiles([...files, ...Array.from(e.currentTarget.files ?? [])]);
          e.currentTarget.value = "";
        }}
      />
      {files.length > 0 && (
        <Text size="sm" mt="xs" data-testid={`${testid}-count`}>
          {files.length} file{files.length === 1 ? "" : "s"} chosen ({(bytes / 1e6).toFixed(1)} MB)
        </Text>
      )}
    </div>
  );
}
