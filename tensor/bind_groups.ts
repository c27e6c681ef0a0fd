/**
 * How the WebGPU backend makes its bind groups: plainly (a new group per launch, released when
 * V8 collects it), or in generations where the adapter needs it
 * (`DeviceProfile.bindGroupsPerGeneration`; `docs/mesa25_crash.md` tells why).
 *
 * WebGPU cannot free a bind group, and Deno releases one only when the garbage collector takes
 * its wrapper. wgpu does release at once every bind group registered with a buffer that is
 * destroyed, and it registers a group with a buffer when the group binds a range of it that no
 * submitted work has initialised yet. In generations every group layout ends with one extra
 * uniform binding, unused by the shaders, that holds a small "tag" buffer: a fresh one after
 * each submit that used the last, so that every group is registered with its tag. Once a
 * generation has made `perGeneration` groups, at the next submit all its tags are destroyed,
 * and with them all its groups (wgpu waits for the submitted work that uses them), whatever the
 * collector does. Within a generation, a launch that binds the same buffer ranges as an earlier
 * one reuses its group.
 *
 * @example
 * ```ts ignore
 * const groups = bindGroupsInGenerations(device, 8192);
 * const layout = device.createBindGroupLayout({
 *   entries: [storageEntry(0), ...groups.trailingEntries(1)],
 * });
 * pass.setBindGroup(0, groups.group(layout, [{ buffer, offset: 0, size: buffer.size }]));
 * pass.end();
 * device.queue.submit([encoder.finish()]);
 * groups.submitted();
 * ```
 *
 * @module
 */

/** One buffer range of a bind group. */
export interface BufferRange {
  readonly buffer: GPUBuffer;
  readonly offset: number;
  readonly size: number;
}

/** The backend's maker of bind groups. */
export interface BindGroups {
  /** Entries that every group layout must end with, after its first `count` bindings. */
  trailingEntries(count: number): GPUBindGroupLayoutEntry[];
  /**
   * A bind group of `layout` (made with {@linkcode BindGroups.trailingEntries}) with
   * `ranges[b]` at binding `b`.
   */
  group(layout: GPUBindGroupLayout, ranges: readonly BufferRange[]): GPUBindGroup;
  /** Tells that the encoded work was submitted and nothing is being encoded. */
  submitted(): void;
  /** Groups made so far. */
  readonly created: number;
}

/** A group of a generation and what it binds. */
interface CachedGroup {
  readonly layout: GPUBindGroupLayout;
  readonly ranges: readonly BufferRange[];
  readonly group: GPUBindGroup;
}

/** Whether `cached` binds `ranges` with `layout`. */
function bindsSame(
  cached: CachedGroup,
  layout: GPUBindGroupLayout,
  ranges: readonly BufferRange[],
): boolean {
  if (cached.layout !== layout || cached.ranges.length !== ranges.length) return false;
  for (let b = 0; b < ranges.length; b++) {
    const x = cached.ranges[b], y = ranges[b];
    if (x.buffer !== y.buffer || x.offset !== y.offset || x.size !== y.size) return false;
  }
  return true;
}

/** Bytes of a tag buffer (the smallest uniform binding that any adapter takes). */
const TAG_BYTES = 16;

function createGroup(
  device: GPUDevice,
  layout: GPUBindGroupLayout,
  ranges: readonly BufferRange[],
): GPUBindGroup {
  return device.createBindGroup({
    layout,
    entries: ranges.map(({ buffer, offset, size }, binding) => ({
      binding,
      resource: { buffer, offset, size },
    })),
  });
}

/**
 * A new bind group per call, released by the garbage collector.
 *
 * @example
 * ```ts ignore
 * const groups = plainBindGroups(device);
 * pass.setBindGroup(0, groups.group(layout, [{ buffer, offset: 0, size: 256 }]));
 * ```
 *
 * @param device The device that makes the groups.
 * @returns A {@linkcode BindGroups} with no trailing entries.
 */
export function plainBindGroups(device: GPUDevice): BindGroups {
  let created = 0;
  return {
    trailingEntries: () => [],
    group(layout, ranges) {
      created++;
      return createGroup(device, layout, ranges);
    },
    submitted() {},
    get created() {
      return created;
    },
  };
}

/**
 * Bind groups released in generations of `perGeneration` groups, reused within a generation
 * (see the module doc).
 *
 * @example
 * ```ts ignore
 * const groups = bindGroupsInGenerations(device, 8192);
 * const a = groups.group(layout, ranges);
 * assert.equal(groups.group(layout, ranges), a); // until the generation is released
 * ```
 *
 * @param device The device that makes the groups.
 * @param perGeneration Groups a generation makes before it is released (a positive integer).
 * @returns A {@linkcode BindGroups} whose layouts end with one uniform binding.
 */
export function bindGroupsInGenerations(device: GPUDevice, perGeneration: number): BindGroups {
  if (!Number.isInteger(perGeneration) || perGeneration < 1) {
    throw new RangeError(
      `Bind groups per generation must be a positive integer, got ${perGeneration}`,
    );
  }
  const ids = new WeakMap<object, number>();
  let nextId = 0;
  const idOf = (object: object): number => {
    let id = ids.get(object);
    if (id === undefined) ids.set(object, id = nextId++);
    return id;
  };
  const newTag = () =>
    device.createBuffer({
      label: "bind_groups.tag",
      size: TAG_BYTES,
      usage: GPUBufferUsage.UNIFORM,
    });
  /** The tag of new groups: no submitted work has used it, so wgpu registers them with it. */
  let tag = newTag();
  let tagUsed = false;
  /** The generation's earlier tags, each used by submitted work. */
  let earlierTags: GPUBuffer[] = [];
  /**
   * The generation's groups by a hash of their layout and ranges (runs once per launch: a
   * number, not a string key), each with what it binds, compared on a hit.
   */
  let groups = new Map<number, CachedGroup[]>();
  let inGeneration = 0;
  let created = 0;
  return {
    trailingEntries: (count) => [{
      binding: count,
      visibility: GPUShaderStage.COMPUTE,
      buffer: { type: "uniform" },
    }],
    group(layout, ranges) {
      let hash = idOf(layout);
      for (const { buffer, offset, size } of ranges) {
        hash = Math.imul(hash ^ idOf(buffer), 0x9e3779b1);
        hash = Math.imul(hash ^ offset, 0x85ebca77);
        hash = Math.imul(hash ^ size, 0xc2b2ae3d);
      }
      let bucket = groups.get(hash);
      const hit = bucket?.find((cached) => bindsSame(cached, layout, ranges));
      if (hit) return hit.group;
      const group = createGroup(device, layout, [...ranges, {
        buffer: tag,
        offset: 0,
        size: TAG_BYTES,
      }]);
      if (!bucket) groups.set(hash, bucket = []);
      bucket.push({ layout, ranges: ranges.map((r) => ({ ...r })), group });
      inGeneration++;
      tagUsed = true;
      created++;
      return group;
    },
    submitted() {
      if (inGeneration >= perGeneration) {
        for (const earlier of earlierTags) earlier.destroy();
        tag.destroy();
        earlierTags = [];
        tag = newTag();
        tagUsed = false;
        groups = new Map();
        inGeneration = 0;
      } else if (tagUsed) {
        // The submitted work initialises the tag: groups made with it from now on would not be
        // registered with it, so they get a fresh one.
        earlierTags.push(tag);
        tag = newTag();
        tagUsed = false;
      }
    },
    get created() {
      return created;
    },
  };
}
